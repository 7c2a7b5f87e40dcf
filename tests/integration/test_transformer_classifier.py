"""The text pipeline's Transformer architecture: trained, exported, registered, and run like the TextCNN.

The server pads each batch only to its longest text, so a text must get the same logits alone
and padded beside longer ones.
"""

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from oar._core.errors import InvalidInputError
from oar.export.source import load_source
from oar.models import TextCNNClassifier, TransformerClassifier
from oar.package import ModelPackage
from oar.pipelines import TextClassifierRecipe, train_text_classifier
from oar.runtime import load_runtime
from oar.train import TrainerConfig

SHORT = "质量很好"
LONGER = [
    "这家酒店的服务很周到，房间也很干净，下次还会再来。早餐品种丰富，前台态度热情，交通也很方便。",
    "物流很快，包装完好，性价比很高，值得购买。",
]


@pytest.fixture(scope="module")
def transformer(hub):
    """500 texts, one epoch, one thread (the Trainer sets torch's thread count; restored after)."""
    threads = torch.get_num_threads()
    recipe = TextClassifierRecipe(
        architecture="text-transformer", limit=500, trainer=TrainerConfig(epochs=1, patience=None, threads=1)
    )
    try:
        return train_text_classifier("chnsenti", "chnsenti-tf-smoke", recipe, hub, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_transformer_package_gives_the_same_logits_alone_and_padded(transformer):
    assert transformer.parity.passed and transformer.parity.samples == len(transformer.dataset.test)
    assert transformer.run.config["architecture"] == "text-transformer"
    runtime = load_runtime(transformer.model.path, intra_op_threads=1)
    tokenizer = runtime.tokenizer
    assert len(tokenizer.encode(SHORT).ids) < min(len(tokenizer.encode(t).ids) for t in LONGER)
    alone = runtime.logits([SHORT])
    padded = runtime.logits([SHORT, *LONGER])
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-4, rtol=0)
    out = runtime.infer({"text": np.array([t.encode() for t in [SHORT, *LONGER]], dtype=object)})
    assert out["probabilities"].shape == (3, 2)
    assert set(out["label"]) <= {label.encode() for label in transformer.dataset.labels}


def test_transformer_package_keeps_a_rebuildable_source(transformer):
    package = ModelPackage.open(transformer.model.path)
    model = load_source(package)
    assert isinstance(model, TransformerClassifier)
    assert model.architecture_kwargs()["heads"] == 4 and model.architecture_kwargs()["dim"] == 128
    tokenizer = Tokenizer.from_file(str(package.file("tokenizer.json")))
    ids = torch.tensor([e.ids for e in tokenizer.encode_batch([SHORT, *LONGER])])
    with torch.no_grad():
        expected = model(ids).numpy()
    np.testing.assert_allclose(load_runtime(package).logits([SHORT, *LONGER]), expected, atol=1e-4, rtol=0)


def test_recipe_defaults_to_the_quickstart_textcnn_and_refuses_unknown_architectures():
    recipe = TextClassifierRecipe()
    assert recipe.architecture == "text-cnn"
    assert type(recipe.build_model(100, 2)) is TextCNNClassifier
    with pytest.raises(InvalidInputError, match="unknown architecture 'rnn'; choose one of text-cnn, text-transformer"):
        TextClassifierRecipe(architecture="rnn")
    with pytest.raises(InvalidInputError, match="not divisible"):
        TextClassifierRecipe(architecture="text-transformer", embed_dim=100, heads=3)
