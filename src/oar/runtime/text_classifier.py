"""Text classification runtime: tokenise in-process, run the ONNX graph, softmax, pick labels.

How a batch is padded is the package's own (``runtime/padding.py``): only models checked to ignore
padding are padded to the longest text and regrouped by length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from oar._core.errors import InvalidInputError, OarError
from oar.package import ModelPackage
from oar.runtime.custom_ops import op_libraries
from oar.runtime.padding import TokenBatchRunner, _length_groups, effective_padding
from oar.runtime.session import create_session
from oar.runtime.text_encoder import TextEncoder


@dataclass(frozen=True)
class TextPrediction:
    labels: list[str]
    scores: np.ndarray  # [n] float32, probability of the chosen label
    probabilities: np.ndarray  # [n, num_labels] float32


class TextClassifierRuntime:
    """Runs a ``text-classification`` package.

    >>> runtime = TextClassifierRuntime(ModelPackage.open("path/to/package"))
    >>> runtime.predict(["质量很好"]).labels
    ['positive']
    """

    def __init__(self, package: ModelPackage, intra_op_threads: int = 0) -> None:
        manifest = package.manifest
        if manifest.runtime.tokenizer_file is None:
            raise OarError(f"package {package.model_id} has no tokenizer; a text classifier needs one")
        self.package = package
        self.labels = manifest.labels
        self._label_array = np.array([label.encode() for label in manifest.labels], dtype=object)
        self.tokenizer = Tokenizer.from_file(str(package.file(manifest.runtime.tokenizer_file)))
        self.encoder = TextEncoder(self.tokenizer)
        self.session = create_session(
            package.file(manifest.runtime.model_file), intra_op_threads, custom_op_libraries=op_libraries(package)
        )
        pad_id = int(self.tokenizer.padding["pad_id"]) if self.tokenizer.padding else 0
        self.padding = effective_padding(self.session, manifest.runtime.padding, pad_id)
        self.runner = TokenBatchRunner(self.session, self.padding)
        self._activation = manifest.runtime.output_activation

    def predict(self, texts: Sequence[str]) -> TextPrediction:
        probabilities, best, scores = self._scored(texts)
        return TextPrediction([self.labels[i] for i in best], scores, probabilities)

    def _scored(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probabilities (float32), the best label index and its probability, per text."""
        logits = self.logits(texts)
        probabilities = _softmax(logits) if self._activation == "softmax" else logits.astype(np.float32, copy=False)
        best = probabilities.argmax(axis=1)
        return probabilities, best, probabilities[np.arange(len(best)), best]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        for i, text in enumerate(texts):
            if not text.strip():
                raise InvalidInputError(f"input 'text' element {i} is empty; send non-empty text")
        ids, lengths = self.encoder.encode(texts)
        return self.runner.run(ids, lengths)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Protocol-level call: ``text`` (BYTES) in, ``label``/``score``/``probabilities`` out."""
        probabilities, best, scores = self._scored(decode_texts(inputs))
        return {"label": self._label_array[best], "score": scores, "probabilities": probabilities}


def decode_texts(inputs: dict[str, np.ndarray]) -> list[str]:
    if set(inputs) != {"text"}:
        raise InvalidInputError(f"expected exactly one input named 'text', got: {', '.join(inputs) or 'none'}")
    array = inputs["text"]
    if array.ndim != 1:
        raise InvalidInputError(f"input 'text' must have shape [n], got {list(array.shape)}")
    if len(array) == 0:
        raise InvalidInputError("input 'text' is empty; send at least one text")
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array]
    except UnicodeDecodeError:
        raise InvalidInputError("input 'text' is not valid UTF-8") from None


__all__ = ["TextClassifierRuntime", "TextPrediction", "_length_groups", "decode_texts"]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
