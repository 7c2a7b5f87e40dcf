"""The data position is restored in O(1): the same remaining batches, without replaying the first ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oar.train import TensorBatches, TextBatches


def _text_batches(seed: int = 3) -> TextBatches:
    rng = np.random.default_rng(0)
    ids = [list(rng.integers(1, 50, size=int(n))) for n in rng.integers(1, 30, size=203)]
    return TextBatches(ids, rng.integers(0, 2, size=203), batch_size=16, shuffle=True, seed=seed)


def test_a_restored_position_yields_the_remaining_batches_of_that_epoch():
    full = _text_batches()
    full.set_epoch(2)
    expected = [x for x, _ in full][5:]
    resumed = _text_batches()
    resumed.load_state_dict({"epoch": 2, "position": 5, "seed": 3, "size": 203})
    got = [x for x, _ in resumed]
    assert len(got) == len(expected) == len(full) - 5
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_restoring_does_not_build_the_skipped_batches():
    batches = TensorBatches(np.zeros((100, 2), np.float32), np.zeros(100), batch_size=10, shuffle=True)
    built = []
    original = batches._inputs
    batches._inputs = lambda idx: built.append(idx) or original(idx)
    batches.load_state_dict({"epoch": 0, "position": 8})
    assert len(list(batches)) == 2 and len(built) == 2


def test_each_new_pass_starts_from_the_top():
    batches = _text_batches()
    first, second = [y for _, y in batches], [y for _, y in batches]
    assert len(first) == len(second) == len(batches)


def test_a_position_for_other_data_is_refused():
    with pytest.raises(ValueError, match="203 examples with seed 3"):
        _text_batches(seed=4).load_state_dict(_text_batches(seed=3).state_dict())


def test_epochs_are_shuffled_differently_but_reproducibly():
    a, b = _text_batches(), _text_batches()
    a.set_epoch(1)
    b.set_epoch(1)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b, strict=True))
    b.set_epoch(2)
    assert not all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b, strict=False))
