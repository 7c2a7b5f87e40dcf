"""ONNX Runtime's quantizers behind one call: ``quantize_onnx(src, dst, method)``.

- ``int8-dynamic``: ``quantize_dynamic``; weights INT8, activations quantized per batch at run
  time. It turns Conv into ConvInteger, which is often *slower* on x86 CPUs: measure.
- ``int8-static``: ``quantize_static`` in QDQ form, per-channel weights, activation ranges
  calibrated on real inputs (the caller passes a sample of the model's training data).
- ``int4-weight``: ``MatMulNBitsQuantizer``, block-wise 4-bit weights for MatMul (MatMulNBits)
  and embedding tables (GatherBlockQuantized); Conv and Gemm are left in float.

What each quantizer touched is returned as op counts, because "quantized" can silently mean
"nothing changed" when a graph has none of the ops a method handles. How far static quantization's
pre-pass got is returned too (``preprocess``): when it fails, the model is quantized without it, and
the report says so.

Nothing here changes process-wide state (working directory, log levels, warning filters): a server
or a notebook may run other threads meanwhile. The pre-pass, which writes scratch files into the
working directory, runs in a child process inside a temporary directory.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from oar._core.errors import OarError

log = logging.getLogger(__name__)
METHODS: tuple[str, ...] = ("int8-dynamic", "int8-static", "int4-weight")
DEFAULT_BLOCK_SIZE = 32
PREPROCESS_TIMEOUT_S = 600.0  # the pre-pass of a large transformer takes minutes; beyond this, quantize without it
# The pre-pass as ONNX Runtime documents it, run as a child process: argv = src, dst, "full" | "no-symbolic".
_PREPROCESS = (
    "import sys\n"
    "from onnxruntime.quantization.shape_inference import quant_pre_process\n"
    "quant_pre_process(sys.argv[1], sys.argv[2], skip_symbolic_shape=sys.argv[3] == 'no-symbolic')\n"
)
_QUANTIZED_OPS = {
    "MatMulInteger",
    "ConvInteger",
    "DynamicQuantizeLinear",
    "QuantizeLinear",
    "DequantizeLinear",
    "MatMulNBits",
    "GatherBlockQuantized",
    "QLinearMatMul",
    "QLinearConv",
    "DynamicQuantizeMatMul",
    "QGemm",
    "QAttention",
}


def quantize_onnx(
    src: Path,
    dst: Path,
    method: str,
    *,
    calibration: Iterable[np.ndarray] | None = None,
    input_name: str = "input_ids",
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict[str, Any]:
    """Write the quantized model to ``dst``; return the settings and the op types it changed."""
    if method not in METHODS:
        raise OarError(f"unknown quantization method '{method}'; use one of {', '.join(METHODS)}")
    if method == "int4-weight" and (block_size < 16 or block_size & (block_size - 1)):
        raise OarError(f"--block-size must be a power of two >= 16, got {block_size}")
    if method == "int8-static" and calibration is None:
        raise OarError("int8-static needs calibration inputs from the model's training data")
    before = _op_counts(src)
    settings: dict[str, Any] = {"method": method}
    with _quiet_quantizer_logs():
        if method == "int8-dynamic":
            _int8_dynamic(src, dst)
        elif method == "int8-static":
            assert calibration is not None
            batches, preprocess = _int8_static(src, dst, calibration, input_name)
            settings |= {"format": "QDQ", "per_channel": True, "calibration_batches": batches, "preprocess": preprocess}
        else:
            _int4_weight(src, dst, block_size)
            settings |= {"block_size": block_size, "symmetric": True}
    after = _op_counts(dst)
    quantized = {op: n for op, n in after.items() if op in _QUANTIZED_OPS and n > before.get(op, 0)}
    if not quantized:
        raise OarError(
            f"{method} found nothing to quantize in this graph (ops: {', '.join(sorted(before))}); try another method"
        )
    replaced = {op: n - after.get(op, 0) for op, n in before.items() if n > after.get(op, 0)}
    return settings | {"quantized_ops": quantized, "replaced_ops": replaced}


def _int8_dynamic(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel scales: per-tensor ones cost MiniLM 1.3 accuracy points, per-channel 0.5.
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)


def _int8_static(
    src: Path, dst: Path, calibration: Iterable[np.ndarray], input_name: str
) -> tuple[int, dict[str, Any]]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    batches = [{input_name: batch} for batch in calibration]
    if not batches:
        raise OarError("no calibration data: the training split is empty")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[dict[str, np.ndarray]] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared, preprocess = _preprocess(src, Path(tmp))
        quantize_static(
            str(prepared),
            str(dst),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    return len(batches), preprocess


def _preprocess(src: Path, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """ORT's recommended pre-pass (shape inference, graph optimisation) before static quantization.

    Symbolic shape inference fails on some dynamo graphs; ONNX shape inference alone is enough then.
    If the pre-pass fails altogether, the source is quantized as it is: returned and logged, never silent.
    Returns the model to quantize and what the pre-pass did (``applied``: full, without-symbolic-shapes,
    none; ``failures``: why each attempt failed).
    """
    failures: list[str] = []
    for applied, mode in (("full", "full"), ("without-symbolic-shapes", "no-symbolic")):
        dst = workdir / f"prepared-{mode}.onnx"
        error = _run_preprocess(src.resolve(), dst, mode, workdir)
        if error is None:
            return dst, {"applied": applied, "failures": failures}
        failures.append(f"{applied}: {error}")
    log.warning("quantization pre-pass failed (%s); quantizing %s without it", "; ".join(failures), src.name)
    return src, {"applied": "none", "failures": failures}


def _run_preprocess(src: Path, dst: Path, mode: str, workdir: Path) -> str | None:
    """Run the pre-pass in a child process whose working directory is a scratch folder; None when it worked."""
    scratch = Path(tempfile.mkdtemp(prefix=f"pre-{mode}-", dir=workdir))
    command = [sys.executable, "-c", _PREPROCESS, str(src), str(dst), mode]
    try:
        result = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=PREPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"timed out after {PREPROCESS_TIMEOUT_S:g} s"
    if result.returncode == 0 and dst.is_file():
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else f"exit status {result.returncode}"


def _int4_weight(src: Path, dst: Path, block_size: int) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(
        block_size=block_size, is_symmetric=True, bits=4, op_types_to_quantize=("MatMul", "Gather")
    )
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)


def _op_counts(path: Path) -> Counter[str]:
    return Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)


class _ThisThreadBelowError(logging.Filter):
    """Drops the records of one thread below ERROR; every other thread logs as configured."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread or record.levelno >= logging.ERROR


@contextmanager
def _quiet_quantizer_logs() -> Iterator[None]:
    """The quantizers log one INFO line per skipped node and a pre-processing hint at WARNING.

    A filter scoped to this thread drops them, instead of raising log levels for the whole process;
    numpy's error state (context-local) silences the divisions by a zero scale of all-zero weight blocks.
    """
    loggers = [logging.getLogger(n) for n in ("onnxruntime.quantization.matmul_nbits_quantizer", "")]
    quiet = _ThisThreadBelowError()
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
