"""Text classification runtime: tokenise in-process, run the ONNX graph, softmax, pick labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from oar._core.errors import InvalidInputError, OarError
from oar.package import ModelPackage
from oar.runtime.session import create_session


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
        self.session = create_session(package.file(manifest.runtime.model_file), intra_op_threads)
        self._input_name = self.session.get_inputs()[0].name

    def predict(self, texts: Sequence[str]) -> TextPrediction:
        logits = self.logits(texts)
        probabilities = _softmax(logits)
        best = probabilities.argmax(axis=1)
        return TextPrediction(
            labels=[self.labels[i] for i in best],
            scores=probabilities[np.arange(len(best)), best],
            probabilities=probabilities,
        )

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        for i, text in enumerate(texts):
            if not text.strip():
                raise InvalidInputError(f"input 'text' element {i} is empty; send non-empty text")
        ids = np.array([e.ids for e in self.tokenizer.encode_batch(list(texts))], dtype=np.int64)
        return self.session.run(None, {self._input_name: ids})[0]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Protocol-level call: ``text`` (BYTES) in, ``label``/``score``/``probabilities`` out."""
        texts = decode_texts(inputs)
        prediction = self.predict(texts)
        best = prediction.probabilities.argmax(axis=1)
        return {
            "label": self._label_array[best],
            "score": prediction.scores.astype(np.float32),
            "probabilities": prediction.probabilities.astype(np.float32),
        }


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


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
