"""Model zoo: plain ``torch.nn.Module`` classes, exportable to ONNX."""

from oar.models.text import BagOfWordsClassifier, TextCNNClassifier
from oar.models.transformer import TransformerClassifier
from oar.models.vision import ResNet, SmallCNN, resnet18, resnet50

__all__ = [
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
