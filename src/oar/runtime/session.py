"""ONNX Runtime session construction, in one place so thread and device settings are applied everywhere.

The device is the process's (``use_device``, from ``oar serve --device``): ``cpu`` (the default), ``cuda``
(ONNX Runtime's CUDA execution provider; an error, never a silent CPU fallback, when this ONNX Runtime
build or machine cannot run it) or ``auto`` (CUDA when the provider is available, else CPU). A CUDA session
is checked against a CPU session of the same graph at load time (``check_provider_parity``): packages
record their export parity as figures, not samples, so the probe is a batch built from the graph's inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from oar._core.errors import InvalidInputError, OarError

DEVICES = ("cpu", "cuda", "auto")
_CPU, _CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
_device = "cpu"
_PARITY_TOLERANCE = 1e-3  # float outputs, CUDA kernels vs CPU ones (TF32 and fused kernels differ slightly)


def providers_for(device: str, available: Sequence[str] | None = None) -> list[str]:
    """The execution providers for ``device``, most preferred first; ``OarError`` when CUDA cannot be had."""
    if device not in DEVICES:
        raise InvalidInputError(f"device must be one of {', '.join(DEVICES)}, not '{device}'")
    available = list(ort.get_available_providers() if available is None else available)
    if device == "cpu" or (device == "auto" and _CUDA not in available):
        return [_CPU]
    if _CUDA not in available:
        raise OarError(
            f"--device cuda: this ONNX Runtime ({ort.__version__}) has no CUDA execution provider "
            f"(it has {', '.join(available)}); install the onnxruntime-gpu build, or serve with --device cpu"
        )
    return [_CUDA, _CPU]


def use_device(device: str) -> list[str]:
    """Make ``device`` the one sessions of this process are created on; returns its providers."""
    global _device
    providers = providers_for(device)
    _device = device
    return providers


def current_device() -> str:
    return _device


def create_session(
    model_path: Path,
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    custom_op_libraries: Sequence[Path] = (),
    device: str | None = None,
) -> ort.InferenceSession:
    """A session with full graph optimisation on ``device`` (default: the process's); 0 threads means ONNX
    Runtime's default.

    ``custom_op_libraries`` are registered first (the graph's custom-domain nodes need them); one
    ONNX Runtime refuses (another version, a broken file) is an ``OarError`` naming it.
    """
    providers = providers_for(device or _device)
    options = _options(intra_op_threads, inter_op_threads, custom_op_libraries)
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    if providers[0] == _CUDA:
        if session.get_providers()[0] != _CUDA:  # ORT falls back to CPU when the CUDA libraries fail to load
            raise OarError(
                f"--device cuda: ONNX Runtime could not start its CUDA provider for {model_path.name} "
                "(CUDA or cuDNN libraries missing, or no GPU); see its log, or serve with --device cpu"
            )
        reference = ort.InferenceSession(str(model_path), sess_options=options, providers=[_CPU])
        check_provider_parity(session, reference, model_path.name)
    return session


def _options(intra_op_threads: int, inter_op_threads: int, custom_op_libraries: Sequence[Path]) -> ort.SessionOptions:
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
    return options


_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
_INTS = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(uint8)": np.uint8}


def probe_feeds(session: ort.InferenceSession, rows: int = 2, seed: int = 0) -> dict[str, np.ndarray] | None:
    """A small deterministic batch for ``session``'s inputs (symbolic dims: ``rows`` first, then 8); None when
    an input's type has no probe (strings)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for node in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else (rows if i == 0 else 8) for i, d in enumerate(node.shape)]
        if node.type in _DTYPES:
            feeds[node.name] = rng.standard_normal(shape).astype(_DTYPES[node.type])
        elif node.type in _INTS:  # token ids and masks: small values stay inside any vocabulary
            feeds[node.name] = rng.integers(0, 2, shape).astype(_INTS[node.type])
        else:
            return None
    return feeds


def check_provider_parity(session: ort.InferenceSession, reference: ort.InferenceSession, name: str) -> None:
    """Refuse ``session`` when its outputs on a probe batch differ from ``reference``'s (the CPU provider's)."""
    feeds = probe_feeds(reference)
    if feeds is None:
        return
    try:
        expected = reference.run(None, feeds)
    except Exception:  # the probe is not a valid input for this graph (e.g. ids past a small vocabulary)
        return
    got = session.run(None, feeds)
    for node, want, have in zip(reference.get_outputs(), expected, got, strict=True):
        want, have = np.asarray(want), np.asarray(have)
        if want.shape != have.shape:
            raise OarError(f"{name}: output '{node.name}' has shape {have.shape} on {session.get_providers()[0]}")
        if np.issubdtype(want.dtype, np.floating):
            diff = float(np.max(np.abs(want.astype(np.float64) - have.astype(np.float64)), initial=0.0))
            scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
            if not diff <= _PARITY_TOLERANCE * scale:
                raise OarError(
                    f"{name}: output '{node.name}' on {session.get_providers()[0]} differs from the CPU provider "
                    f"by {diff:.3g} (tolerance {_PARITY_TOLERANCE * scale:.3g}); serve with --device cpu"
                )
        elif not np.array_equal(want, have):
            raise OarError(f"{name}: output '{node.name}' on {session.get_providers()[0]} differs from the CPU one")
