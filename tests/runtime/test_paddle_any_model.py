"""Paddle models that are not masked text classifiers: imported, served, and answering as Paddle does.

- A bidirectional LSTM without a padding mask: its answer for a text depends on padding, so the import
  must find that out (padding invariance check) and serve each text at its own length; a 20-text request
  must give every text the answer Paddle gives it alone.
- The same LSTM saved with a fixed sequence length (``InputSpec([None, 32])``): mixed-length batches
  must be padded to 32, not to the longest text (which ONNX Runtime refuses).
- A CNN over ``[N, 1, 28, 28]`` float images: no tokenizer; served as an image classifier on both
  protocols, with bad tensors answered 400.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from oar._core.errors import InvalidInputError, OarError
from oar.client import ModelClient
from oar.data import load_builtin
from oar.data.tokenizer import train_wordpiece
from oar.importers.paddle import PaddleImport, import_paddle, paddle_python
from oar.package import ModelPackage

from .conftest import serving

SCRIPT = Path(__file__).with_name("paddle_models.py")
SEQ_LEN = 32
TOLERANCE = 1e-5  # probabilities, served vs Paddle


@pytest.fixture(scope="module")
def python() -> Path:
    try:
        return paddle_python()
    except OarError as exc:
        pytest.skip(f"Paddle environment absent: {exc}")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """20 real reviews of very different lengths, as one client request."""
    test = sorted(load_builtin("chnsenti").test.x[:400], key=len)
    return [test[i] for i in np.linspace(0, len(test) - 1, 20).astype(int)]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_wordpiece(load_builtin("chnsenti").train.x[:3000], vocab_size=3000).save(str(path))
    return path


def _paddle(python: Path, *args: str) -> None:
    result = subprocess.run([str(python), str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def lstm_prefixes(python, tokenizer_file, tmp_path_factory) -> dict[str, str]:
    """The BiLSTM trained a few steps, saved twice: dynamic sequence axis and fixed at SEQ_LEN."""
    from tokenizers import Tokenizer

    root = tmp_path_factory.mktemp("lstm")
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=SEQ_LEN)
    tokenizer.enable_truncation(max_length=SEQ_LEN)
    train = load_builtin("chnsenti").train
    ids = np.array([e.ids for e in tokenizer.encode_batch(list(train.x[:2000]))], dtype=np.int64)
    np.savez(root / "data.npz", train_x=ids, train_y=train.y[:2000], vocab_size=tokenizer.get_vocab_size())
    prefixes = {"dynamic": str(root / "lstm"), "fixed": str(root / "lstm32")}
    _paddle(python, "lstm", str(root / "data.npz"), prefixes["dynamic"])
    _paddle(python, "lstm", str(root / "data.npz"), prefixes["fixed"], str(SEQ_LEN))
    return prefixes


def _paddle_alone(python: Path, prefix: str, rows: list[np.ndarray], tmp: Path) -> np.ndarray:
    """Paddle's probabilities for each row run alone."""
    np.savez(tmp / "rows.npz", **{str(i): row for i, row in enumerate(rows)})
    _paddle(python, "predict", prefix, str(tmp / "rows.npz"), str(tmp / "out.npz"))
    out = np.load(tmp / "out.npz")
    logits = np.stack([out[str(i)] for i in range(len(rows))])
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def _ids(tokenizer_file: Path, texts: list[str], length: int | None = None) -> list[np.ndarray]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    if length:
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=length)
        tokenizer.enable_truncation(max_length=length)
    return [np.array(e.ids, dtype=np.int64) for e in tokenizer.encode_batch(texts)]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_unmasked_lstm_answers_each_text_as_paddle_does_whatever_else_is_in_the_batch(
    hub, python, lstm_prefixes, tokenizer_file, texts, tmp_path
):
    spec = PaddleImport(lstm_prefixes["dynamic"], "paddle-lstm", tokenizer_file, ["negative", "positive"], "chnsenti")
    registered = import_paddle(hub, spec)

    manifest = ModelPackage.open(registered.path).manifest
    padding = manifest.runtime.padding
    assert padding.strategy == "per-text" and padding.invariant is False and padding.max_abs_diff > 1e-3
    assert manifest.parity.passed and "mixed-length batches" in manifest.parity.inputs
    expected = _paddle_alone(python, lstm_prefixes["dynamic"], _ids(tokenizer_file, texts), tmp_path)
    with (
        serving([registered.model_id]) as server,
        ModelClient(server.endpoint) as rest,
        ModelClient(server.grpc_endpoint) as grpc,
    ):
        together = [rest.infer("paddle-lstm", {"text": np.array(texts, dtype=object)}) for _ in range(2)]
        alone = [rest.predict(model_id="paddle-lstm", inputs={"text": t}) for t in texts[:5]]
        over_grpc = grpc.infer("paddle-lstm", {"text": np.array(texts, dtype=object)})
    for served in [*together, over_grpc]:
        np.testing.assert_allclose(served["probabilities"], expected, atol=TOLERANCE)
        assert [label.decode() for label in served["label"]] == [manifest.labels[i] for i in expected.argmax(1)]
    assert [a["score"] for a in alone] == pytest.approx(expected[:5].max(1).tolist(), abs=TOLERANCE)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_fixed_length_model_is_padded_to_its_graph_length_under_batching(
    hub, python, lstm_prefixes, tokenizer_file, texts, tmp_path
):
    spec = PaddleImport(lstm_prefixes["fixed"], "paddle-lstm32", tokenizer_file, ["negative", "positive"])
    registered = import_paddle(hub, spec)

    padding = ModelPackage.open(registered.path).manifest.runtime.padding
    assert padding.strategy == "fixed" and padding.length == SEQ_LEN
    expected = _paddle_alone(python, lstm_prefixes["fixed"], _ids(tokenizer_file, texts, SEQ_LEN), tmp_path)
    many = texts * 2  # 40 mixed-length texts in one request, some longer than 32 tokens
    with serving([registered.model_id]) as server, ModelClient(server.endpoint) as client:
        served = client.infer("paddle-lstm32", {"text": np.array(many, dtype=object)})
    np.testing.assert_allclose(served["probabilities"], np.concatenate([expected, expected]), atol=TOLERANCE)


@pytest.fixture(scope="module")
def cnn_prefix(python, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("cnn")
    train = load_builtin("mnist-5k").train
    np.savez(root / "data.npz", train_x=train.x[:2000], train_y=train.y[:2000])
    prefix = str(root / "cnn")
    _paddle(python, "cnn", str(root / "data.npz"), prefix)
    return prefix


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_paddle_cnn_is_imported_without_a_tokenizer_and_served_on_both_protocols(hub, python, cnn_prefix, tmp_path):
    labels = [str(i) for i in range(10)]
    registered = import_paddle(hub, PaddleImport(cnn_prefix, "paddle-cnn", labels=labels, dataset="mnist-5k"))

    manifest = ModelPackage.open(registered.path).manifest
    assert manifest.task == "image-classification" and manifest.runtime.tokenizer_file is None
    assert manifest.inputs[0].model_dump() == {"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}
    assert manifest.parity.passed and manifest.parity.samples == 64
    images = load_builtin("mnist-5k").test.x[:24]
    expected = _paddle_alone(python, cnn_prefix, list(images), tmp_path)
    with (
        serving([registered.model_id]) as server,
        ModelClient(server.endpoint) as rest,
        ModelClient(server.grpc_endpoint) as grpc,
    ):
        for client in (rest, grpc):
            served = client.infer("paddle-cnn", {"image": images})
            np.testing.assert_allclose(served["probabilities"], expected, atol=TOLERANCE)
            assert [label.decode() for label in served["label"]] == [labels[i] for i in expected.argmax(1)]
        with pytest.raises(InvalidInputError, match="image"):
            grpc.infer("paddle-cnn", {"image": images[:, :, :27]})
        response = httpx.post(
            f"{server.endpoint}/v2/models/paddle-cnn/infer",
            json={"inputs": [{"name": "image", "datatype": "INT64", "shape": [1, 1, 28, 28], "data": [0] * 784}]},
            timeout=30,
        )
        assert response.status_code == 400 and "FP32" in response.json()["error"]
