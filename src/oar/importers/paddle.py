"""``oar import paddle``: a ``paddle.jit.save`` model -> paddle2onnx -> parity vs Paddle -> oar package.

paddle2onnx pins an older ``onnx`` than oar uses, so Paddle and paddle2onnx live in their own
virtualenv (``<this venv>/paddle``, or ``OAR_PADDLE_PYTHON``) and are driven through
``paddle_worker.py`` in a subprocess; oar itself never imports paddle. The converted graph is
checked against Paddle's own output on sample inputs (real texts or images when a dataset is given)
before anything is registered. Text models get their padding from evidence (``export/padding_check.py``):
a model that is not padding-invariant (an LSTM without a mask) is served per text, never regrouped, and
a fixed sequence length is read from the graph. Without a tokenizer, any tensor model is imported: an
image classifier when labels are given, else generic.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
from tokenizers import Tokenizer

from oar import __version__
from oar._core.errors import InvalidInputError, OarError, ParityError
from oar.export.graph_signature import graph_signature
from oar.export.lineage_data import sample
from oar.export.onnx import onnx_opset
from oar.export.padding_check import decide_padding, pad_rows, served_parity, unpadded_rows
from oar.export.parity import DEFAULT_TOLERANCE
from oar.hub import Hub, ModelVersion
from oar.package import Lineage, Manifest, ModelPackage, Parity, RuntimeSpec, TensorSpec
from oar.package.manifest import text_classifier_signature
from oar.protocol.datatypes import numpy_dtype
from oar.runtime.generic import run_checked
from oar.runtime.padding import TokenBatchRunner
from oar.runtime.session import create_session

WORKER = Path(__file__).with_name("paddle_worker.py")
REQUIREMENTS = Path(__file__).with_name("paddle_requirements.txt")
PARITY_SAMPLES = 64
_FREE_DIM = 32  # size of a dynamic non-batch dimension in random parity inputs
_WORKER_TIMEOUT_S = 600


@dataclass(frozen=True)
class PaddleImport:
    """What to import. Without ``tokenizer`` the model is a tensor model: an image classifier with
    ``labels`` (one input, ``[batch, classes]`` out), else generic (its own tensors in and out)."""

    prefix: str
    name: str
    tokenizer: Path | None = None
    labels: list[str] | None = None
    dataset: str | None = None  # built-in dataset: real sample inputs for parity, lineage for quantize
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
    if spec.tokenizer is not None and not spec.tokenizer.is_file():
        raise InvalidInputError(f"tokenizer file {spec.tokenizer} does not exist; pass a tokenizer.json")
    python = paddle_python()
    with tempfile.TemporaryDirectory(dir=hub.artifacts.root / "tmp") as tmp:
        staging = Path(tmp) / "package"
        staging.mkdir()
        _worker(python, "convert", spec.prefix, str(staging))
        model_path = staging / "model.onnx"
        reference = _PaddleReference(python, spec.prefix, Path(tmp))
        if spec.tokenizer is not None:
            manifest = _text_manifest(spec, model_path, staging, reference)
        else:
            manifest = _tensor_manifest(spec, model_path, reference)
        dataset_ref = hub.register_dataset(_dataset(spec.dataset)).ref if spec.dataset else None
        manifest = manifest.model_copy(update={"lineage": Lineage(dataset=dataset_ref, oar_version=__version__)})
        ModelPackage.write(staging, manifest)
        return hub.register_model(staging)


class _PaddleReference:
    """Paddle's own outputs for batches of inputs, computed in the Paddle environment (one worker call)."""

    def __init__(self, python: Path, prefix: str, tmp: Path) -> None:
        self.python, self.prefix, self.tmp = python, prefix, tmp

    def run(self, batches: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
        names = list(batches[0])
        np.savez(self.tmp / "inputs.npz", **{f"b{i}.{n}": b[n] for i, b in enumerate(batches) for n in names})
        _worker(
            self.python, "run", self.prefix, str(self.tmp / "inputs.npz"), str(self.tmp / "paddle.npz"), ",".join(names)
        )
        out = np.load(self.tmp / "paddle.npz")
        count = len({key.split(".", 1)[1] for key in out.files})
        return [[out[f"b{i}.{k}"] for k in range(count)] for i in range(len(batches))]


def _text_manifest(spec: PaddleImport, model_path: Path, staging: Path, reference: _PaddleReference) -> Manifest:
    """A text classifier: its padding decided from evidence, parity checked as the server runs it."""
    assert spec.tokenizer is not None
    graph_input, num_labels = _graph_signature(model_path)
    labels = _labels(spec, num_labels)
    seq_len = graph_input.shape[1]
    tokenizer = _tokenizer_for(spec.tokenizer, seq_len)
    tokenizer.save(str(staging / "tokenizer.json"))
    pad_id = int(tokenizer.padding["pad_id"]) if tokenizer.padding else 0
    rows, what = _sample_rows(tokenizer, spec.dataset, seq_len)
    session = create_session(model_path)
    try:
        padding = decide_padding(session, rows, pad_id, spec.tolerance)
    except InvalidArgument as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise InvalidInputError(
            f"the converted model refused the tokenizer's ids ({reason}); is {spec.tokenizer} the tokenizer "
            "the model was trained with?"
        ) from None

    def paddle_each(groups: list[np.ndarray]) -> list[np.ndarray]:
        return [outs[0] for outs in reference.run([{graph_input.name: g} for g in groups])]

    runner = TokenBatchRunner(session, padding)
    parity = served_parity(paddle_each, runner, rows, spec.tolerance, "paddle", what)
    _refuse_unless(parity)
    inputs, outputs = text_classifier_signature(num_labels)
    return Manifest(
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
            padding=padding,
            output_activation=_activation(runner.run(*pad_rows(rows, pad_id))),
        ),
        parity=parity,
        lineage=Lineage(oar_version=__version__),
    )


def _tensor_manifest(spec: PaddleImport, model_path: Path, reference: _PaddleReference) -> Manifest:
    """Any tensor model (images in, scores out): parity on real or random inputs in served batch shapes."""
    graph_in, graph_out = graph_signature(model_path)
    labels = None
    if spec.labels is not None:
        if len(graph_in) != 1 or len(graph_out) != 1 or len(graph_out[0].shape) != 2:
            raise OarError("labels need a classifier: one input tensor and one [batch, classes] output")
        labels = _labels(spec, graph_out[0].shape[1])
    samples, what = _sample_tensors(graph_in, spec.dataset)
    parity, outputs = _tensor_parity(model_path, reference, samples, spec.tolerance, what)
    _refuse_unless(parity)
    if labels is not None and graph_out[0].shape[1] == -1:
        labels = _labels(spec, outputs[0].shape[1])
    classifier = labels is not None
    return Manifest(
        name=spec.name,
        task="image-classification" if classifier else "generic",
        labels=labels or [],
        inputs=graph_in,
        outputs=_classifier_outputs(len(labels)) if classifier else graph_out,
        runtime=RuntimeSpec(
            tokenizer_file=None,
            opset=onnx_opset(model_path),
            exporter="paddle2onnx",
            graph_inputs=graph_in,
            graph_outputs=graph_out,
            output_activation=_activation(outputs[0]) if classifier else "softmax",
        ),
        parity=parity,
        lineage=Lineage(oar_version=__version__),
    )


def _labels(spec: PaddleImport, num_labels: int) -> list[str]:
    labels = spec.labels or [str(i) for i in range(num_labels)]
    if len(labels) != num_labels:
        raise InvalidInputError(f"the model has {num_labels} outputs but {len(labels)} labels were given")
    return labels


def _classifier_outputs(num_labels: int) -> list[TensorSpec]:
    return [
        TensorSpec(name="label", datatype="BYTES", shape=[-1]),
        TensorSpec(name="score", datatype="FP32", shape=[-1]),
        TensorSpec(name="probabilities", datatype="FP32", shape=[-1, num_labels]),
    ]


def _activation(outputs: np.ndarray) -> str:
    """``none`` when the model already returns probabilities (rows >= 0 summing to 1), else ``softmax``."""
    rows_sum_to_one = np.abs(outputs.sum(axis=1) - 1).max() <= 1e-4
    return "none" if outputs.min() >= -1e-6 and rows_sum_to_one else "softmax"


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
    """Pad to the longest text (the runtime pads on to a fixed sequence length), truncate to a fixed one."""
    tokenizer = Tokenizer.from_file(str(path))
    pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else 0
    pad_token = tokenizer.padding["pad_token"] if tokenizer.padding else "[PAD]"
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    if seq_len > 0:
        tokenizer.enable_truncation(max_length=seq_len)
    return tokenizer


def _sample_rows(tokenizer: Tokenizer, dataset: str | None, seq_len: int) -> tuple[list[np.ndarray], str]:
    """Token ids of real texts from ``dataset`` when given, else random ids of mixed lengths."""
    if dataset:
        texts = sample(_dataset(dataset).test.x, PARITY_SAMPLES)
        rows = [np.array(e.ids, dtype=np.int64) for e in tokenizer.encode_batch(texts)]
        pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else 0
        return unpadded_rows([pad_rows(rows, pad_id)[0]], pad_id), f"{dataset} test texts"
    rng = np.random.default_rng(0)
    longest = seq_len if seq_len > 0 else 48
    lengths = rng.integers(1, longest + 1, size=PARITY_SAMPLES)
    vocab = tokenizer.get_vocab_size()
    return [rng.integers(1, vocab, size=n).astype(np.int64) for n in lengths], "random id sequences (mixed lengths)"


def _sample_tensors(graph_in: list[TensorSpec], dataset: str | None) -> tuple[dict[str, np.ndarray], str]:
    """``PARITY_SAMPLES`` inputs per graph input: the dataset's test images when they fit, else random."""
    if dataset:
        x = _dataset(dataset).test.x
        if len(graph_in) != 1 or not isinstance(x, np.ndarray) or not _fits(graph_in[0], x):
            raise InvalidInputError(
                f"dataset '{dataset}' has inputs of shape {list(np.shape(x))[1:]}, which the model's input "
                f"{graph_in[0].name} {graph_in[0].shape} does not take"
            )
        index = np.random.default_rng(0).choice(len(x), size=min(PARITY_SAMPLES, len(x)), replace=False)
        return {graph_in[0].name: x[np.sort(index)].astype(numpy_dtype(graph_in[0].datatype))}, f"{dataset} test inputs"
    rng = np.random.default_rng(0)
    samples = {}
    for spec in graph_in:
        shape = [PARITY_SAMPLES, *(d if d > 0 else _FREE_DIM for d in spec.shape[1:])]
        dtype = numpy_dtype(spec.datatype)
        samples[spec.name] = (rng.integers(0, 2, size=shape) if dtype.kind in "iub" else rng.random(shape)).astype(
            dtype
        )
    return samples, "random inputs (uniform [0, 1); ints 0..1)"


def _fits(spec: TensorSpec, x: np.ndarray) -> bool:
    return x.ndim == len(spec.shape) and all(d in (-1, got) for d, got in zip(spec.shape[1:], x.shape[1:], strict=True))


def _tensor_parity(
    model_path: Path, reference: _PaddleReference, samples: dict[str, np.ndarray], tolerance: float, what: str
) -> tuple[Parity, list[np.ndarray]]:
    """ONNX on all samples in one call (as the server stacks requests) vs Paddle on batches of 1, 7 and the rest."""
    total = len(next(iter(samples.values())))
    cuts = [0, 1, min(8, total), total]
    chunks = [{k: v[a:b] for k, v in samples.items()} for a, b in itertools.pairwise(cuts) if b > a]
    expected = [np.concatenate(parts) for parts in zip(*reference.run(chunks), strict=True)]
    session = create_session(model_path)
    actual = run_checked(session, [o.name for o in session.get_outputs()], samples)
    worst, agree, rows = 0.0, 0, 0
    for want, got in zip(expected, actual, strict=True):
        if want.shape != got.shape:
            raise ParityError(
                f"converted graph returns shape {list(got.shape)}, Paddle {list(want.shape)}; not registered"
            )
        worst = max(worst, float(np.abs(want.astype(np.float64) - got.astype(np.float64)).max()))
        if want.ndim == 2 and want.dtype.kind == "f":
            agree += int((want.argmax(1) == got.argmax(1)).sum())
            rows += len(want)
    agreement = agree / rows if rows else 1.0
    sizes = [str(b - a) for a, b in itertools.pairwise(cuts) if b > a]
    parity = Parity(
        reference="paddle",
        samples=total,
        max_abs_diff=worst,
        argmax_agreement=agreement,
        tolerance=tolerance,
        passed=worst <= tolerance and agreement == 1.0,
        inputs=f"{total} {what}: ONNX on one stacked batch vs Paddle on batches of {', '.join(sizes)}",
    )
    return parity, actual


def _refuse_unless(parity: Parity) -> None:
    if not parity.passed:
        raise ParityError(
            f"converted graph disagrees with Paddle: max abs diff {parity.max_abs_diff:.2e} (tolerance "
            f"{parity.tolerance:.0e}), argmax agreement {parity.argmax_agreement:.4f} on {parity.inputs}; "
            "not registered"
        )


def _dataset(name: str):  # type: ignore[no-untyped-def]
    from oar.data import load_builtin

    return load_builtin(name)
