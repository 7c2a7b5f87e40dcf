"""Evidence for how a text model may be padded, and parity checked the way the server runs it.

``decide_padding`` runs the graph that will be served on real texts twice: each text alone (its own
length) and padded inside a batch of longer texts. If no output moves by more than the tolerance the
model ignores padding (``longest``: the server may pad to the longest text and regroup by length);
otherwise it is served ``per-text``. A graph with a fixed sequence length is ``fixed`` regardless.

``served_parity`` then compares the source model (PyTorch or Paddle), run on each text alone, with the
package's runtime path on mixed-length batches: the answers a client gets, not those of one tidy call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import onnxruntime as ort

from oar.package import Padding, Parity
from oar.runtime.padding import TokenBatchRunner, graph_sequence_length

INVARIANCE_SAMPLES = 64
SERVED_BATCH = 64  # texts per served call in the check: large enough that ``longest`` regroups by length
_EXTRA_PADDING = 8  # every text of the invariance check gets at least this much padding

Reference = Callable[[list[np.ndarray]], list[np.ndarray]]  # id batches -> the source model's outputs


def unpadded_rows(batches: Iterable[np.ndarray], pad_id: int) -> list[np.ndarray]:
    """Each text's ids without its right padding (at least one id)."""
    rows = []
    for batch in batches:
        for row in np.asarray(batch, dtype=np.int64):
            real = np.flatnonzero(row != pad_id)
            rows.append(row[: max(int(real[-1]) + 1, 1) if len(real) else 1].copy())
    return rows


def pad_rows(rows: Sequence[np.ndarray], pad_id: int, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` right-padded (and, with ``width``, truncated) to one array; and each row's length."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    width = width or int(lengths.max())
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : min(len(row), width)] = row[:width]
    return ids, np.minimum(lengths, width)


def decide_padding(session: ort.InferenceSession, rows: Sequence[np.ndarray], pad_id: int, tolerance: float) -> Padding:
    """``fixed`` for a fixed-length graph; else ``longest`` if padding changes no output, ``per-text`` if it does."""
    length = graph_sequence_length(session)
    if length is not None:
        return Padding(strategy="fixed", length=length, pad_id=pad_id)
    name = session.get_inputs()[0].name
    sample = _spread(rows, INVARIANCE_SAMPLES)
    alone = [session.run(None, {name: row[None, :]})[0][0] for row in sample]
    longest = max(len(r) for r in sample)
    try:
        padded, _ = pad_rows(sample, pad_id, longest + _EXTRA_PADDING)
        together = session.run(None, {name: padded})[0]
    except ort.capi.onnxruntime_pybind11_state.Fail:
        # a model with a largest length (e.g. position embeddings) refuses extra width: pad to the longest
        # text only, which still pads every shorter text of the sample
        padded, _ = pad_rows(sample, pad_id, longest)
        together = session.run(None, {name: padded})[0]
    worst = max(float(np.abs(a - t).max()) for a, t in zip(alone, together, strict=True))
    invariant = worst <= tolerance
    return Padding(
        strategy="longest" if invariant else "per-text",
        pad_id=pad_id,
        invariant=invariant,
        max_abs_diff=worst,
        samples=len(sample),
    )


def served_parity(
    reference: Reference,
    runner: TokenBatchRunner,
    rows: Sequence[np.ndarray],
    tolerance: float,
    reference_name: str,
    what: str,
) -> Parity:
    """Source model on each text alone vs the runtime on mixed-length batches of ``SERVED_BATCH``."""
    expected = _reference_each(reference, rows, runner.padding)
    actual = np.concatenate(
        [
            runner.run(*pad_rows(rows[start : start + SERVED_BATCH], runner.padding.pad_id))
            for start in range(0, len(rows), SERVED_BATCH)
        ]
    )
    worst = float(np.abs(expected - actual).max())
    agreement = float((expected.argmax(1) == actual.argmax(1)).mean())
    return Parity(
        reference=reference_name,
        samples=len(rows),
        max_abs_diff=worst,
        argmax_agreement=agreement,
        tolerance=tolerance,
        passed=len(rows) > 0 and worst <= tolerance and agreement == 1.0,
        inputs=(
            f"{len(rows)} {what}, served as the runtime runs them (mixed-length batches of {SERVED_BATCH}, "
            f"padding '{runner.padding.strategy}') vs {reference_name} on each text alone"
        ),
    )


def _reference_each(reference: Reference, rows: Sequence[np.ndarray], padding: Padding) -> np.ndarray:
    """The source model's output per text alone: at the fixed length, or at the text's own length."""
    if padding.strategy == "fixed":
        chunks = [
            pad_rows(rows[i : i + SERVED_BATCH], padding.pad_id, padding.length)[0]
            for i in range(0, len(rows), SERVED_BATCH)
        ]
        return np.concatenate(reference(chunks))
    lengths = np.array([len(r) for r in rows])
    groups = [np.flatnonzero(lengths == n) for n in np.unique(lengths)]
    outputs = reference([np.stack([rows[i] for i in group]) for group in groups])
    out = np.empty((len(rows), *outputs[0].shape[1:]), dtype=outputs[0].dtype)
    for group, result in zip(groups, outputs, strict=True):
        out[group] = result
    return out


def _spread(rows: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """Up to ``n`` rows, evenly spread over ``rows`` (a fixed choice: reproducible)."""
    if len(rows) <= n:
        return list(rows)
    return [rows[i] for i in np.linspace(0, len(rows) - 1, n).astype(int)]
