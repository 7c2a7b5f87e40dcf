"""Text classification runtime: tokenise in-process, run the ONNX graph, softmax, pick labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from oar._core.errors import InvalidInputError, OarError
from oar.package import ModelPackage
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
        self.session = create_session(package.file(manifest.runtime.model_file), intra_op_threads)
        self._input_name = self.session.get_inputs()[0].name

    def predict(self, texts: Sequence[str]) -> TextPrediction:
        probabilities, best, scores = self._scored(texts)
        return TextPrediction([self.labels[i] for i in best], scores, probabilities)

    def _scored(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probabilities (float32), the best label index and its probability, per text."""
        probabilities = _softmax(self.logits(texts))
        best = probabilities.argmax(axis=1)
        return probabilities, best, probabilities[np.arange(len(best)), best]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        for i, text in enumerate(texts):
            if not text.strip():
                raise InvalidInputError(f"input 'text' element {i} is empty; send non-empty text")
        ids, lengths = self.encoder.encode(texts)
        if len(ids) < 2 * _MIN_GROUP:
            return self.session.run(None, {self._input_name: ids})[0]
        return self._grouped_logits(ids, lengths)

    def _grouped_logits(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Run a large batch as a few length groups, each padded only to its own longest text.

        Padding is masked (same logits at any padded length), so this changes cost, not results:
        with mixed lengths most of a single call's work would be spent on padding.
        """
        order = np.argsort(lengths, kind="stable")
        out: np.ndarray | None = None
        for group in _length_groups(lengths[order]):
            rows = order[group]
            width = int(lengths[rows[-1]])
            logits = self.session.run(None, {self._input_name: ids[rows, :width]})[0]
            if out is None:
                out = np.empty((len(ids), logits.shape[1]), dtype=logits.dtype)
            out[rows] = logits
        assert out is not None
        return out

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


_MIN_GROUP = 8  # fewer texts than this per call and the call overhead outweighs the padding saved
_CALL_COST_TOKENS = 24  # one extra model call costs about as much as this many padded token positions


def _length_groups(sorted_lengths: np.ndarray) -> list[slice]:
    """Cut lengths (ascending) into groups where the padding a merge would add exceeds a call's cost."""
    groups, start = [], 0
    for i in range(1, len(sorted_lengths)):
        size = i - start
        waste = size * int(sorted_lengths[i] - sorted_lengths[i - 1])
        if size >= _MIN_GROUP and len(sorted_lengths) - i >= _MIN_GROUP and waste > _CALL_COST_TOKENS:
            groups.append(slice(start, i))
            start = i
    groups.append(slice(start, len(sorted_lengths)))
    return groups


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
