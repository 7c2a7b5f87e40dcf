"""ONNX Runtime session construction, in one place so thread settings are applied everywhere."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def create_session(model_path: Path, intra_op_threads: int = 0, inter_op_threads: int = 0) -> ort.InferenceSession:
    """A CPU session with full graph optimisation; 0 threads means ONNX Runtime's default."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
