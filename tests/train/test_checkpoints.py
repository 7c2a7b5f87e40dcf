"""Checkpoints are atomic, verified on read, pruned to the last k, and readable without pickle."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch

from oar.train.checkpoint import Checkpoints, open_checkpoint
from oar.train.rng import capture_rng, restore_rng


def _write(store: Checkpoints, step: int) -> None:
    weights = {"model": {"w": torch.full((4, 4), float(step)), "b": torch.arange(3.0)}}
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))])
    store.write(step, weights, {"optimizer": optimizer.state_dict(), "rng": capture_rng()}, {"epoch": step})


def test_the_newest_checkpoint_is_read_back_exactly(tmp_path):
    store = Checkpoints(tmp_path, keep_last=5)
    for step in (10, 20, 30):
        _write(store, step)
    latest = store.latest()
    assert latest is not None and latest.step == 30 and latest.meta["epoch"] == 30
    assert torch.equal(latest.weights()["w"], torch.full((4, 4), 30.0))
    assert set(latest.state()) == {"optimizer", "rng"}


def test_only_the_last_k_are_kept(tmp_path):
    store = Checkpoints(tmp_path, keep_last=2)
    for step in range(1, 6):
        _write(store, step)
    assert store.steps() == [4, 5]


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "drop_manifest"])
def test_a_damaged_checkpoint_is_skipped_with_a_warning(tmp_path, caplog, damage):
    store = Checkpoints(tmp_path, keep_last=3)
    _write(store, 1)
    _write(store, 2)
    newest = tmp_path / "step-000000002"
    if damage == "truncate":
        data = (newest / "model.safetensors").read_bytes()
        (newest / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "flip_byte":
        data = bytearray((newest / "state.pt").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (newest / "state.pt").write_bytes(bytes(data))
    else:
        (newest / "manifest.json").unlink()
    with caplog.at_level(logging.WARNING, logger="oar.train"):
        latest = store.latest()
    assert latest is not None and latest.step == 1
    assert "skipping checkpoint step-000000002" in caplog.text
    assert (tmp_path / "step-000000002.invalid").is_dir()  # set aside, so it is not warned about again


def test_a_half_written_directory_is_never_read_and_is_cleaned_up(tmp_path):
    store = Checkpoints(tmp_path)
    _write(store, 1)
    leftover = tmp_path / ".tmp-step-000000002-999"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")
    assert store.latest().step == 1
    _write(store, 3)
    assert not leftover.exists()


def test_the_state_file_loads_with_weights_only(tmp_path):
    """No pickle: torch.load(weights_only=True) refuses arbitrary objects, and the state needs none."""
    _write(Checkpoints(tmp_path), 7)
    state = open_checkpoint(tmp_path / "step-000000007").state()  # weights_only=True inside
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)


def test_every_rng_is_restored():
    state = capture_rng()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    restore_rng(state)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])
