"""A Paddle model trained a few steps, saved with paddle.jit.save, imported, served and queried.

Paddle and paddle2onnx live in their own venv (paddle2onnx pins an older onnx than oar's);
`make paddle-env` creates it, and CI runs that before the tests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from oar._core.errors import OarError
from oar.client import ModelClient
from oar.data import load_builtin
from oar.importers.paddle import PaddleImport, import_paddle, paddle_python
from oar.package import ModelPackage
from oar.serve.process import ServerProcess

SEQ_LEN = 32
PROBE = ["这家酒店的服务很周到，房间也很干净", "质量太差了，用了两天就坏了", "物流很快，包装完好", "非常失望，不推荐"]


@pytest.fixture(scope="module")
def python() -> Path:
    try:
        return paddle_python()
    except OarError as exc:
        pytest.skip(f"Paddle environment absent: {exc}")


@pytest.fixture(scope="module")
def paddle_model(tmp_path_factory, python, smoke_copy) -> tuple[str, Path, np.ndarray]:
    """Train and save with Paddle; return the prefix, the tokenizer file and Paddle's logits for PROBE."""
    root = tmp_path_factory.mktemp("paddle")
    tokenizer_file = Path(smoke_copy.path) / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=SEQ_LEN)
    tokenizer.enable_truncation(max_length=SEQ_LEN)
    train = load_builtin("chnsenti").train

    def encode(texts):
        return np.array([e.ids for e in tokenizer.encode_batch(list(texts))], dtype=np.int64)

    np.savez(
        root / "data.npz",
        train_ids=encode(train.x[:2000]),
        train_labels=train.y[:2000],
        probe_ids=encode(PROBE),
        vocab_size=tokenizer.get_vocab_size(),
    )
    prefix = str(root / "classifier")
    script = Path(__file__).with_name("paddle_train.py")
    result = subprocess.run(
        [str(python), str(script), str(root / "data.npz"), prefix], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert Path(prefix + ".json").is_file() and Path(prefix + ".pdiparams").is_file()
    return prefix, tokenizer_file, np.load(prefix + ".probe.npy")


def test_a_paddle_model_is_imported_with_parity_served_and_queried(hub, paddle_model):
    prefix, tokenizer_file, paddle_logits = paddle_model
    spec = PaddleImport(prefix, "chnsenti-paddle", tokenizer_file, ["negative", "positive"], dataset="chnsenti")

    registered = import_paddle(hub, spec)

    manifest = ModelPackage.open(registered.path).manifest
    assert manifest.runtime.exporter == "paddle2onnx" and manifest.parity.reference == "paddle"
    assert manifest.parity.passed and manifest.parity.max_abs_diff <= 1e-4 and manifest.parity.samples == 64
    assert manifest.lineage.dataset["name"] == "chnsenti"
    server = ServerProcess([registered.model_id]).start(timeout=240)  # a busy shared machine starts slowly
    try:
        with ModelClient(server.endpoint) as client:
            served = client.predict(model_id="chnsenti-paddle", inputs={"text": PROBE})
    finally:
        server.stop()
    expected = np.exp(paddle_logits) / np.exp(paddle_logits).sum(1, keepdims=True)
    assert [p["label"] for p in served] == [manifest.labels[i] for i in paddle_logits.argmax(1)]
    assert [p["score"] for p in served] == pytest.approx(expected.max(1).tolist(), abs=1e-5)


def test_import_refuses_a_missing_model_and_a_wrong_label_count(hub, paddle_model, tmp_path):
    prefix, tokenizer_file, _ = paddle_model
    with pytest.raises(OarError, match=r"no .*\.json or .*\.pdmodel"):
        import_paddle(hub, PaddleImport(str(tmp_path / "missing"), "nope", tokenizer_file))
    with pytest.raises(OarError, match="2 outputs but 3 labels"):
        import_paddle(hub, PaddleImport(prefix, "nope", tokenizer_file, ["a", "b", "c"]))
    assert all(m.name != "nope" for m in hub.models.list())
