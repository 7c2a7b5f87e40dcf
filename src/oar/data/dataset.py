"""The in-memory dataset and its deterministic, stratified split."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from oar._core.digest import sha256_bytes, sha256_lines

SPLIT_SEED = 20240527
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class DataCard:
    """What a dataset is and where it came from; stored in the hub next to its digest."""

    name: str
    task: str  # "text-classification" | "image-classification" | "click-through-rate"
    source: str
    license: str
    labels: list[str]
    description: str = ""
    notes: list[str] = field(default_factory=list)
    # the input layout a model needs beyond the arrays' shape (tabular data: dense count, table sizes, bag length)
    features: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Split:
    """One partition: ``x`` is a list of texts or an ``(n, ...)`` float array, ``y`` integer labels.

    Click-through-rate rows are packed into one float row each (``oar.models.dlrm.pack``): dense
    features, then every feature's bag of ids, exact as floats below 2**24.
    """

    x: list[str] | np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def head(self, limit: int | None) -> Split:
        """The first ``limit`` examples (all when ``None``): splits are already shuffled with a fixed seed."""
        if limit is None or limit >= len(self):
            return self
        return self.take(np.arange(limit))

    def take(self, indices: np.ndarray) -> Split:
        if isinstance(self.x, np.ndarray):
            return Split(self.x[indices], self.y[indices])
        return Split([self.x[i] for i in indices], self.y[indices])


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset with a fixed train/valid/test split and a content digest."""

    card: DataCard
    train: Split
    valid: Split
    test: Split
    digest: str

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def labels(self) -> list[str]:
        return self.card.labels

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}

    def label_counts(self) -> dict[str, int]:
        y = np.concatenate([self.train.y, self.valid.y, self.test.y])
        return {label: int((y == i).sum()) for i, label in enumerate(self.labels)}

    @classmethod
    def from_records(cls, card: DataCard, x: list[str] | np.ndarray, y: np.ndarray) -> Dataset:
        """Digest the records and split them 80/10/10, stratified by label, with a fixed seed."""
        y = np.asarray(y, dtype=np.int64)
        digest = _digest(x, y)
        everything = Split(x, y)
        train_idx, valid_idx, test_idx = stratified_split(y)
        return cls(
            card=card,
            train=everything.take(train_idx),
            valid=everything.take(valid_idx),
            test=everything.take(test_idx),
            digest=digest,
        )


def stratified_split(
    y: np.ndarray, fractions: tuple[float, float, float] = SPLIT_FRACTIONS, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices per class so every partition keeps the label balance; same input, same split."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        n_train = round(len(idx) * fractions[0])
        n_valid = round(len(idx) * fractions[1])
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_valid])
        parts[2].append(idx[n_train + n_valid :])
    out = []
    for chunks in parts:
        merged = np.concatenate(chunks)
        rng.shuffle(merged)
        out.append(merged)
    return out[0], out[1], out[2]


def _digest(x: list[str] | np.ndarray, y: np.ndarray) -> str:
    if isinstance(x, np.ndarray):
        return sha256_bytes(np.ascontiguousarray(x).tobytes() + y.tobytes())
    return sha256_lines(f"{label}\t{text}" for text, label in zip(x, y.tolist(), strict=True))
