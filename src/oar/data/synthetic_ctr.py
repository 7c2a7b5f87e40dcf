"""Criteo-like click data, generated: 13 count features, 26 categorical bags, ~25% clicks.

The categorical cardinalities are those of the Criteo display-advertising (Kaggle) data, capped at
``max_table_rows`` by hashing as DLRM's ``--max-ind-range`` does; ids follow a Zipf law (a few
values carry most rows, as in real logs), every third feature is a multi-hot bag of up to ``bag``
ids, ~5% of bags are empty (missing values). Dense counts are log-normal with ~10% missing, given
to the model as ``log(1 + x)``. Clicks come from a hidden logistic model over dense features,
per-id effects and one feature cross, so a model has something real to learn. Same seed, same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CRITEO_CARDINALITIES = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)  # fmt: skip
DENSE_FEATURES = 13


@dataclass(frozen=True)
class CtrData:
    dense: np.ndarray  # float32 [N, 13], log(1 + count)
    ids: np.ndarray  # int64 [N, 26, bag], -1 = padding
    clicks: np.ndarray  # int64 [N], 0 or 1
    cardinalities: tuple[int, ...]
    probability: np.ndarray | None = None  # float64 [N]: the hidden model's click probability (the known signal)

    def split(self, fraction: float) -> tuple[CtrData, CtrData]:
        cut = int(len(self.clicks) * fraction)
        p = self.probability
        first = CtrData(self.dense[:cut], self.ids[:cut], self.clicks[:cut], self.cardinalities, _cut(p, None, cut))
        second = CtrData(self.dense[cut:], self.ids[cut:], self.clicks[cut:], self.cardinalities, _cut(p, cut, None))
        return first, second


def _cut(values: np.ndarray | None, start: int | None, stop: int | None) -> np.ndarray | None:
    return None if values is None else values[start:stop]


def criteo_like(rows: int, seed: int = 0, bag: int = 4, max_table_rows: int = 10_000, zipf: float = 1.1) -> CtrData:
    """``rows`` generated impressions; see the module docstring for the distributions."""
    rng = np.random.default_rng(seed)
    cards = tuple(min(c, max_table_rows) for c in CRITEO_CARDINALITIES)
    ids = np.full((rows, len(cards), bag), -1, dtype=np.int64)
    logit = np.zeros(rows)
    for f, card in enumerate(cards):
        weights = 1.0 / np.arange(1, card + 1) ** zipf
        rank_to_id = rng.permutation(card)
        sizes = rng.integers(1, bag + 1, rows) if f % 3 == 0 else np.ones(rows, dtype=np.int64)
        sizes[rng.random(rows) < 0.05] = 0
        drawn = rank_to_id[rng.choice(card, size=(rows, bag), p=weights / weights.sum())]
        ids[:, f, :] = np.where(np.arange(bag)[None, :] < sizes[:, None], drawn, -1)
        effect = rng.normal(0, 0.6 if f < 8 else 0.2, card)
        picked = np.where(ids[:, f, :] >= 0, effect[np.clip(ids[:, f, :], 0, None)], 0.0)
        logit += picked.sum(1) / np.maximum(sizes, 1)
    counts = rng.lognormal(mean=1.0, sigma=1.5, size=(rows, DENSE_FEATURES))
    counts[rng.random(counts.shape) < 0.1] = 0
    dense = np.log1p(counts).astype(np.float32)
    logit += dense @ rng.normal(0, 0.3, DENSE_FEATURES)
    cross = rng.normal(0, 1.0, (cards[5], cards[8]))
    logit += cross[np.clip(ids[:, 5, 0], 0, None), np.clip(ids[:, 8, 0], 0, None)]
    logit += -1.6 - np.median(logit)  # ~25% clicks, as in the Criteo logs
    probability = 1 / (1 + np.exp(-logit))
    clicks = (rng.random(rows) < probability).astype(np.int64)
    return CtrData(dense, ids, clicks, cards, probability)
