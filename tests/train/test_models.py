"""The model zoo: each model trains on real data with the engine; the Transformer exports to ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oar.data import load_builtin
from oar.models import BagOfWordsClassifier, SmallCNN, TextCNNClassifier, TransformerClassifier, resnet18, resnet50
from oar.models import text as text_module
from oar.train import TensorBatches, TextBatches, Trainer, TrainerConfig


@pytest.fixture(scope="module")
def digits():
    return load_builtin("digits")


@pytest.mark.parametrize(
    ("make", "epochs", "floor"),
    [(lambda: SmallCNN(1, 10), 4, 0.85), (lambda: resnet18(1, 10, width=8), 3, 0.85)],
    ids=["small-cnn", "resnet18"],
)
def test_vision_models_learn_digits(digits, make, epochs, floor):
    torch.manual_seed(0)
    model = make()
    train = TensorBatches(digits.train.x, digits.train.y, 32, shuffle=True)
    valid = TensorBatches(digits.valid.x, digits.valid.y, 128)
    config = TrainerConfig(epochs=epochs, lr=3e-3, patience=None, threads=1)
    result = Trainer(model, train, valid, config, progress=False).fit()
    assert result.best_metrics["valid_accuracy"] >= floor


def test_resnet50_uses_bottlenecks_and_backpropagates():
    model = resnet50(1, 10, width=8)
    assert sum(1 for _ in model.recompute_blocks()) == 16  # 3 + 4 + 6 + 3
    logits = model(torch.randn(2, 1, 28, 28))
    logits.sum().backward()
    assert logits.shape == (2, 10) and model.stem[0][0].weight.grad is not None


TEXT_MODELS = {
    "transformer": lambda vocab: TransformerClassifier(vocab, 2, dim=32, depth=2, heads=2, max_len=128),
    "text-cnn": lambda vocab: TextCNNClassifier(vocab, 2, embed_dim=32, channels=16),
    "bag-of-words": lambda vocab: BagOfWordsClassifier(vocab, 2, embed_dim=32),
}


@pytest.mark.parametrize("arch", list(TEXT_MODELS))
def test_text_models_ignore_padding_and_export_to_onnx(arch, small_text, tmp_path):
    from oar.export.onnx import InputSpec, export_onnx
    from oar.export.parity import check_parity

    torch.manual_seed(0)
    model = TEXT_MODELS[arch](small_text.vocab_size).eval()
    batch = next(iter(TextBatches(small_text.valid_ids, small_text.valid_y, 8)))[0]
    padded = torch.cat([batch, torch.zeros(len(batch), 5, dtype=torch.int64)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model(padded), atol=1e-5, rtol=1e-5)
    path, _ = export_onnx(model, tmp_path / "model.onnx", [InputSpec([None, None], "int64", "input_ids")], ["logits"])
    by_length = sorted(small_text.valid_ids, key=len)
    picked = by_length[:16] + by_length[56:72] + by_length[-16:]  # short, middle, long: three padded widths
    batches = [x for x, _ in TextBatches(picked, np.zeros(len(picked)), 16)]
    parity = check_parity(model, path, batches)
    assert parity.passed, parity
    assert len({b.shape[1] for b in batches}) > 1 and np.isfinite(parity.max_abs_diff)


def test_text_cnn_matmul_convolutions_equal_conv1d():
    """The TextCNN runs its convolutions as shifted MatMuls; they must give ``nn.Conv1d``'s results."""
    torch.manual_seed(0)
    model = TextCNNClassifier(50, 2, embed_dim=8, channels=4, kernel_sizes=(1, 2, 3, 4, 5)).eval()
    ids = torch.randint(1, 50, (3, 7))
    x = model.embedding(ids)
    for conv in model.convs:
        expected = conv(x.transpose(1, 2))[..., : ids.shape[1]].transpose(1, 2)
        torch.testing.assert_close(text_module._conv_as_matmul(conv, x, {}), expected)
