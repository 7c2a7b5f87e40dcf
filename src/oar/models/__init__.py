"""Model zoo: plain ``torch.nn.Module`` classes, exportable to ONNX."""

from collections.abc import Callable

from torch import nn

from oar.models.text import BagOfWordsClassifier, TextCNNClassifier
from oar.models.transformer import TransformerClassifier
from oar.models.vision import ResNet, SmallCNN, resnet18, resnet50

# The zoo by name, as `oar train` configs and `oar quickstart --architecture` spell it: name -> (constructor,
# input kind). Text models take (vocab_size, num_classes, ...), image models (in_channels, num_classes, ...).
ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "text-bow": (BagOfWordsClassifier, "text"),
    "text-cnn": (TextCNNClassifier, "text"),
    "text-transformer": (TransformerClassifier, "text"),
    "cnn": (SmallCNN, "image"),
    "resnet18": (resnet18, "image"),
    "resnet50": (resnet50, "image"),
}

__all__ = [
    "ARCHITECTURES",
    "BagOfWordsClassifier",
    "MiniLMClassifier",
    "ResNet",
    "SmallCNN",
    "TextCNNClassifier",
    "TransformerClassifier",
    "resnet18",
    "resnet50",
]


def __getattr__(name: str) -> object:
    """``MiniLMClassifier`` imports ``transformers`` (seconds): load it only when it is asked for."""
    if name == "MiniLMClassifier":
        from oar.models.minilm import MiniLMClassifier

        return MiniLMClassifier
    raise AttributeError(f"module 'oar.models' has no attribute {name!r}")
