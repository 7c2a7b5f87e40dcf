"""Model zoo: plain ``torch.nn.Module`` classes, exportable to ONNX."""

from oar.models.text import TextCNNClassifier

__all__ = ["TextCNNClassifier"]
