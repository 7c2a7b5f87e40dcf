"""Built-in datasets: real files from installed packages, deterministic splits, honest datacards."""

import numpy as np
import pytest

from oar._core.errors import NotFoundError
from oar.data import BUILTIN_DATASETS, load_builtin
from oar.data.builtin import BUILTIN_TASKS
from oar.data.dataset import stratified_split


def test_chnsenti_is_deduplicated_and_contradictions_are_dropped():
    data = load_builtin("chnsenti")
    texts = list(data.train.x) + list(data.valid.x) + list(data.test.x)
    assert len(texts) == len(set(texts)), "a text appears twice across splits"
    assert 16_000 < len(texts) < 18_000
    assert data.labels == ["negative", "positive"]
    assert any("both files dropped" in note for note in data.card.notes)


@pytest.mark.parametrize("name", list(BUILTIN_DATASETS))
def test_every_builtin_dataset_loads_with_a_datacard_and_digest(name):
    data = load_builtin(name)
    assert data.digest.startswith("sha256:") and data.card.task == BUILTIN_TASKS[name]
    assert data.card.source and data.card.license
    counts = data.label_counts()
    assert set(counts) == set(data.labels)
    assert all(n > 0 for n in counts.values()), f"a label of {name} has no examples"


def test_thucnews_has_ten_balanced_classes():
    data = load_builtin("thucnews-10k")
    assert len(data.labels) == 10
    assert sum(data.counts().values()) == 10_000


def test_split_is_stratified_and_reproducible():
    y = np.array([0] * 900 + [1] * 100)
    first, second = stratified_split(y), stratified_split(y)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    train, valid, test = first
    assert len(set(train) | set(valid) | set(test)) == len(y)
    assert abs(y[test].mean() - 0.1) < 0.02


def test_unknown_dataset_names_the_available_ones():
    with pytest.raises(NotFoundError, match="chnsenti"):
        load_builtin("no-such-dataset")
