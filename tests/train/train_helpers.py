"""Build a small real training setup in one call, so each test states only what it varies."""

from __future__ import annotations

from typing import Any

import torch

from oar.models import TransformerClassifier
from oar.train import Callback, TextBatches, Trainer, TrainerConfig


class StopAt(Callback):
    """Simulates a crash at ``step``: after its optimizer step, before that step's checkpoint."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if record["step"] == self.step:
            raise KeyboardInterrupt(f"stopped at step {self.step}")


def make_trainer(data, callbacks=(), mode=None, batch_size: int = 32, **options: Any) -> Trainer:
    torch.manual_seed(0)
    model = TransformerClassifier(data.vocab_size, 2, dim=32, depth=2, heads=2, max_len=64, dropout=0.2)
    config = TrainerConfig(
        **{
            "epochs": 2,
            "log_every": 1,
            "eval_every": 5,
            "patience": None,
            "restore_best": False,
            "threads": 1,  # on 2 shared cores, 2 OpenMP threads run ~20x slower than 1
            **options,
        }
    )
    train = TextBatches(data.train_ids, data.train_y, batch_size, shuffle=True, seed=config.seed)
    valid = TextBatches(data.valid_ids, data.valid_y, 64)
    return Trainer(model, train, valid, config, progress=False, callbacks=callbacks, mode=mode)


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def curve(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history without wall-clock figures, which legitimately differ between runs."""
    return [{k: v for k, v in h.items() if k != "samples_per_s"} for h in history]
