"""Token ids of a batch of texts into the graph, padded the way the package was validated.

The padding is the package's (``manifest.runtime.padding``), decided when it was written:

- ``longest``: the model masks padding (checked), so a batch is padded to its longest text and a large
  batch is run as a few length groups, each padded only to its own longest text: cost, not results.
- ``fixed``: the graph has a fixed sequence length; every text is padded or truncated to it.
- ``per-text``: the model's answer depends on padding; each text runs at its own length and only texts
  of exactly equal length share a call, so what else is in the batch never changes an answer.

A package without the field (written before it existed) is ``longest``, unless its graph declares a
fixed sequence length, which is then read from the graph itself.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort

from oar.package import Padding

_MIN_GROUP = 8  # fewer texts than this per call and the call overhead outweighs the padding saved
_CALL_COST_TOKENS = 24  # one extra model call costs about as much as this many padded token positions


def graph_sequence_length(session: ort.InferenceSession) -> int | None:
    """The fixed second dimension of the graph's first input, or ``None`` when it is dynamic."""
    shape = session.get_inputs()[0].shape
    return shape[1] if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0 else None


def effective_padding(session: ort.InferenceSession, padding: Padding | None, pad_id: int) -> Padding:
    """The manifest's padding, or the one the graph implies for packages that do not record it."""
    length = graph_sequence_length(session)
    if length is not None and (padding is None or padding.strategy != "fixed" or padding.length != length):
        return Padding(strategy="fixed", length=length, pad_id=padding.pad_id if padding else pad_id)
    return padding or Padding(strategy="longest", pad_id=pad_id)


class TokenBatchRunner:
    """``runner.run(ids, lengths)`` -> the graph's first output, one row per text, in input order."""

    def __init__(self, session: ort.InferenceSession, padding: Padding) -> None:
        self.session = session
        self.padding = padding
        self._input_name = session.get_inputs()[0].name
        self.run = {"longest": self._longest, "fixed": self._fixed, "per-text": self._per_text}[padding.strategy]

    def _call(self, ids: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input_name: ids})[0]

    def _longest(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if len(ids) < 2 * _MIN_GROUP:
            return self._call(ids)
        order = np.argsort(lengths, kind="stable")
        return self._grouped(ids, lengths, order, _length_groups(lengths[order]))

    def _fixed(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        length = self.padding.length
        assert length is not None
        width = ids.shape[1]
        if width >= length:
            return self._call(np.ascontiguousarray(ids[:, :length]))
        padded = np.full((len(ids), length), self.padding.pad_id, dtype=ids.dtype)
        padded[:, :width] = ids
        return self._call(padded)

    def _per_text(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        lengths = np.maximum(lengths, 1)
        order = np.argsort(lengths, kind="stable")
        sorted_lengths = lengths[order]
        cuts = np.flatnonzero(np.diff(sorted_lengths)) + 1
        bounds = [0, *cuts.tolist(), len(ids)]
        groups = [slice(a, b) for a, b in itertools.pairwise(bounds)]
        return self._grouped(ids, lengths, order, groups)

    def _grouped(self, ids: np.ndarray, lengths: np.ndarray, order: np.ndarray, groups: list[slice]) -> np.ndarray:
        out: np.ndarray | None = None
        for group in groups:
            rows = order[group]
            width = int(lengths[rows[-1]])
            result = self._call(ids[rows, :width])
            if out is None:
                out = np.empty((len(ids), *result.shape[1:]), dtype=result.dtype)
            out[rows] = result
        assert out is not None
        return out


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
