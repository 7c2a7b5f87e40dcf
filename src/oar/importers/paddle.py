"""``oar import paddle``: a ``paddle.jit.save`` model -> paddle2onnx -> parity vs Paddle -> oar package.

paddle2onnx pins an older ``onnx`` than oar uses, so Paddle and paddle2onnx live in their own
virtualenv (``<this venv>/paddle``, or ``OAR_PADDLE_PYTHON``) and are driven through
``paddle_worker.py`` in a subprocess; oar itself never imports paddle. The converted graph is
checked against Paddle's own output on sample inputs (real texts when a dataset is given)
before anything is registered.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from tokenizers import Tokenizer

from oar import __version__
from oar._core.errors import InvalidInputError, OarError, ParityError
from oar.export.lineage_data import sample, token_batches
from oar.export.onnx import onnx_opset
from oar.export.parity import DEFAULT_TOLERANCE
from oar.hub import Hub, ModelVersion
from oar.package import Lineage, Manifest, ModelPackage, Parity, RuntimeSpec, TensorSpec
from oar.package.manifest import text_classifier_signature
from oar.runtime.session import create_session

WORKER = Path(__file__).with_name("paddle_worker.py")
REQUIREMENTS = Path(__file__).with_name("paddle_requirements.txt")
PARITY_SAMPLES = 64
_WORKER_TIMEOUT_S = 600


@dataclass(frozen=True)
class PaddleImport:
    prefix: str
    name: str
    tokenizer: Path
    labels: list[str] | None = None
    dataset: str | None = None  # built-in dataset: real sample texts for parity, lineage for quantize
    tolerance: float = DEFAULT_TOLERANCE


def paddle_python() -> Path:
    """The interpreter of the isolated Paddle environment, or a clear error saying how to create it."""
    configured = os.environ.get("OAR_PADDLE_PYTHON")
    python = Path(configured) if configured else Path(sys.prefix) / "paddle" / "bin" / "python"
    if not python.is_file():
        raise OarError(
            f"the Paddle toolchain is not installed ({python} is missing); create it with "
            f"'{sys.executable} -m venv {python.parent.parent} && {python} -m pip install -r {REQUIREMENTS}' "
            "(make paddle-env does this), or point OAR_PADDLE_PYTHON at one"
        )
    return python


def import_paddle(hub: Hub, spec: PaddleImport) -> ModelVersion:
    """Convert, check parity against Paddle, package and register; nothing is registered on failure."""
    if not spec.tokenizer.is_file():
        raise InvalidInputError(f"tokenizer file {spec.tokenizer} does not exist; pass a tokenizer.json")
    python = paddle_python()
    with tempfile.TemporaryDirectory(dir=hub.artifacts.root / "tmp") as tmp:
        staging = Path(tmp) / "package"
        staging.mkdir()
        _worker(python, "convert", spec.prefix, str(staging))
        model_path = staging / "model.onnx"
        graph_input, num_labels = _graph_signature(model_path)
        labels = spec.labels or [str(i) for i in range(num_labels)]
        if len(labels) != num_labels:
            raise InvalidInputError(f"the model has {num_labels} outputs but {len(labels)} labels were given")
        tokenizer = _tokenizer_for(spec.tokenizer, graph_input.shape[1])
        tokenizer.save(str(staging / "tokenizer.json"))
        ids = _sample_ids(tokenizer, spec.dataset, graph_input.shape[1])
        parity = _parity(python, spec, model_path, ids, Path(tmp))
        dataset_ref = hub.register_dataset(_dataset(spec.dataset)).ref if spec.dataset else None
        inputs, outputs = text_classifier_signature(num_labels)
        manifest = Manifest(
            name=spec.name,
            task="text-classification",
            labels=labels,
            inputs=inputs,
            outputs=outputs,
            runtime=RuntimeSpec(
                opset=onnx_opset(model_path),
                exporter="paddle2onnx",
                graph_inputs=[graph_input],
                graph_outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, num_labels])],
            ),
            parity=parity,
            lineage=Lineage(dataset=dataset_ref, oar_version=__version__),
        )
        ModelPackage.write(staging, manifest)
        return hub.register_model(staging)


def _worker(python: Path, *args: str) -> None:
    """``-I`` keeps the worker's own folder off sys.path: this module is named paddle.py too."""
    result = subprocess.run(
        [str(python), "-I", str(WORKER), *args], capture_output=True, text=True, timeout=_WORKER_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        cause = worker_error(f"{result.stderr}\n{result.stdout}") or f"exit code {result.returncode}"
        raise OarError(f"paddle {args[0]} failed: {cause}")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[(ERROR|WARNING|INFO)\]\s*")
_NOISE = re.compile(r"^\[operator <.*> error\]$|^\.$|^-+$|^warnings\.warn|Warning:")
_ERROR = re.compile(r"error|exception|invalid|failed|not found|no such", re.IGNORECASE)


def worker_error(output: str) -> str:
    """The lines of a worker's output that say what went wrong, joined into one line.

    Paddle ends its errors with a bare ``[operator < x > error]`` and paddle2onnx with colour codes,
    so the last line alone is often useless: take the exception a Python traceback ends with, or
    else the lines that read like errors, and drop colour codes, warnings and those trailers.
    """
    lines = [_LOG_PREFIX.sub("", _ANSI.sub("", line)).rstrip() for line in output.splitlines()]
    lines = [line for line in lines if line.strip()]
    frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
    if frames:
        tail = lines[frames[-1] + 1 :]
        while tail and tail[0].startswith("    "):  # the frame's source line and its ^^^ markers
            tail = tail[1:]
        candidates = tail
    else:
        candidates = [line for line in lines if _ERROR.search(line)] or lines[-1:]
    meaningful = [line.strip() for line in candidates if not _NOISE.search(line.strip())]
    return " ".join(meaningful[:6])


def _graph_signature(model_path: Path) -> tuple[TensorSpec, int]:
    """The single int64 id input a text classifier takes, and the number of output classes."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise OarError("oar imports Paddle text classifiers with one input (token ids) and one output (logits)")
    tensor = graph.input[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.INT64 or len(tensor.shape.dim) != 2:
        raise OarError("the Paddle model's input must be int64 token ids of shape [batch, sequence]")
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    out_dims = graph.output[0].type.tensor_type.shape.dim
    if len(out_dims) != 2 or not out_dims[1].HasField("dim_value"):
        raise OarError("the Paddle model's output must be logits of shape [batch, classes]")
    return TensorSpec(name=graph.input[0].name, datatype="INT64", shape=[-1, shape[1]]), out_dims[1].dim_value


def _tokenizer_for(path: Path, seq_len: int) -> Tokenizer:
    """Pad to the longest text, or to the model's fixed sequence length when it has one."""
    tokenizer = Tokenizer.from_file(str(path))
    pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else 0
    pad_token = tokenizer.padding["pad_token"] if tokenizer.padding else "[PAD]"
    if seq_len > 0:
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token, length=seq_len)
        tokenizer.enable_truncation(max_length=seq_len)
    elif not tokenizer.padding:
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tokenizer


def _sample_ids(tokenizer: Tokenizer, dataset: str | None, seq_len: int) -> np.ndarray:
    """Real texts from ``dataset`` when given, else random ids from the tokenizer's vocabulary."""
    if dataset:
        texts = sample(_dataset(dataset).test.x, PARITY_SAMPLES)
        return next(token_batches(tokenizer, texts, PARITY_SAMPLES))
    rng = np.random.default_rng(0)
    return rng.integers(1, tokenizer.get_vocab_size(), size=(PARITY_SAMPLES, seq_len if seq_len > 0 else 24))


def _parity(python: Path, spec: PaddleImport, model_path: Path, ids: np.ndarray, tmp: Path) -> Parity:
    np.save(tmp / "inputs.npy", ids.astype(np.int64))
    _worker(python, "run", spec.prefix, str(tmp / "inputs.npy"), str(tmp / "paddle.npy"))
    expected = np.load(tmp / "paddle.npy")
    session = create_session(model_path)
    actual = session.run(None, {session.get_inputs()[0].name: ids.astype(np.int64)})[0]
    worst = float(np.abs(expected - actual).max())
    agreement = float((expected.argmax(1) == actual.argmax(1)).mean())
    parity = Parity(
        reference="paddle",
        samples=len(ids),
        max_abs_diff=worst,
        argmax_agreement=agreement,
        tolerance=spec.tolerance,
        passed=worst <= spec.tolerance and agreement == 1.0,
    )
    if not parity.passed:
        raise ParityError(
            f"converted graph disagrees with Paddle: max abs diff {worst:.2e} (tolerance "
            f"{spec.tolerance:.0e}), argmax agreement {agreement:.4f}; not registered"
        )
    return parity


def _dataset(name: str):  # type: ignore[no-untyped-def]
    from oar.data import load_builtin

    return load_builtin(name)
