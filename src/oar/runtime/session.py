"""ONNX Runtime session construction, in one place so thread settings are applied everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from oar._core.errors import OarError


def create_session(
    model_path: Path, intra_op_threads: int = 0, inter_op_threads: int = 0, custom_op_libraries: Sequence[Path] = ()
) -> ort.InferenceSession:
    """A CPU session with full graph optimisation; 0 threads means ONNX Runtime's default.

    ``custom_op_libraries`` are registered first (the graph's custom-domain nodes need them); one
    ONNX Runtime refuses (another version, a broken file) is an ``OarError`` naming it.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.log_severity_level = 3
    for library in custom_op_libraries:
        try:
            options.register_custom_ops_library(str(library))
        except Exception as exc:  # ORT raises its own exception types; the first line says why
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OarError(f"ONNX Runtime cannot load the custom-op library {library.name}: {reason[:500]}") from None
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
