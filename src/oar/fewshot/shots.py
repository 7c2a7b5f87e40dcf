"""Draw K labelled examples per class from a dataset's training split, or say clearly why not.

The draw is a pure function of (dataset version, K, seed): the indices it returns are positions in
the dataset version's training split, whose order is fixed by the split seed, so a run's recorded
example ids name exactly the texts it was trained on.
"""

from __future__ import annotations

import numpy as np

from oar._core.errors import InvalidInputError
from oar.data import Dataset, load_builtin


def check_shots(dataset: Dataset, shots: int) -> None:
    """Refuse what no draw can satisfy: K < 1, a dataset that is not labelled text, K above the smallest class."""
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise InvalidInputError(f"shots must be a whole number of examples per class, at least 1; got {shots!r}")
    if dataset.card.task != "text-classification" or not isinstance(dataset.train.x, list):
        raise InvalidInputError(
            f"dataset '{dataset.name}' is for {dataset.card.task}, not labelled text; few-shot training needs "
            "a text-classification dataset"
        )
    if len(dataset.labels) < 2 or len(dataset.train) == 0:
        raise InvalidInputError(f"dataset '{dataset.name}' has no labels to learn (it needs two classes or more)")
    counts = np.bincount(dataset.train.y, minlength=len(dataset.labels))
    smallest = int(counts.argmin())
    if shots > counts[smallest]:
        raise InvalidInputError(
            f"shots {shots} is more than class '{dataset.labels[smallest]}' has in the training split of "
            f"'{dataset.name}' ({counts[smallest]}); use --shots {counts[smallest]} or fewer"
        )


def draw_shots(dataset: Dataset, shots: int, seed: int = 0) -> np.ndarray:
    """Sorted training-split indices: ``shots`` of each class, drawn without replacement with ``seed``."""
    check_shots(dataset, shots)
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(np.flatnonzero(dataset.train.y == label), size=shots, replace=False)
        for label in range(len(dataset.labels))
    ]
    return np.sort(np.concatenate(picked))


def load_text_dataset(dataset: str | Dataset, shots: int) -> Dataset:
    """The dataset (a built-in name or a ``Dataset``), refused early when no draw of ``shots`` can come from it."""
    loaded = load_builtin(dataset) if isinstance(dataset, str) else dataset
    check_shots(loaded, shots)
    return loaded
