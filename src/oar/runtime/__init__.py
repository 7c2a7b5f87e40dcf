"""Load a model package and predict. Imports onnxruntime, tokenizers and numpy only: never torch."""

from oar.runtime.generic import GenericOnnxRuntime
from oar.runtime.image_classifier import ImageClassifierRuntime
from oar.runtime.loader import Runtime, load_runtime
from oar.runtime.text_classifier import TextClassifierRuntime, TextPrediction

__all__ = [
    "GenericOnnxRuntime",
    "ImageClassifierRuntime",
    "Runtime",
    "TextClassifierRuntime",
    "TextPrediction",
    "load_runtime",
]
