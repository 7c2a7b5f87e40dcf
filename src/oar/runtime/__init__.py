"""Load a model package and predict. Imports onnxruntime, tokenizers and numpy only: never torch."""

from oar.runtime.loader import load_runtime
from oar.runtime.text_classifier import TextClassifierRuntime, TextPrediction

__all__ = ["TextClassifierRuntime", "TextPrediction", "load_runtime"]
