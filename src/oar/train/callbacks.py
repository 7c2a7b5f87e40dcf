"""Callbacks: code that runs at fixed points of ``fit`` without touching the loop.

Subclass ``Callback`` and override what you need; every hook gets the trainer and
a plain ``record`` dict. Callbacks must not draw random numbers or change the
model, or a resumed run would no longer match an uninterrupted one.

>>> class PrintLoss(Callback):
...     def on_step_end(self, trainer, record):
...         print(record["step"], record["train_loss"])
>>> Trainer(model, train, valid, config, callbacks=[PrintLoss()])
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oar.train.trainer import Trainer, TrainResult


class Callback:
    def on_fit_start(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """``record``: ``step`` (0, or where a resumed run continues), ``total_steps``, ``resumed_from``."""

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Every ``log_every`` steps: ``step``, ``epoch``, ``train_loss``, ``lr``, ``samples_per_s``."""

    def on_evaluate(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After each evaluation: the step record plus ``valid_loss``, ``valid_accuracy`` (and ``valid_auc``)."""

    def on_checkpoint(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After a checkpoint is in place: ``step``, ``path``, ``seconds``, ``reason``."""

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Once, when ``fit`` returns normally."""


class TensorBoardLogger(Callback):
    """Writes TensorBoard event files (train loss, lr, throughput, validation metrics) with tensorboardX.

    Only the main process writes. Open them with ``tensorboard --logdir DIR``.
    """

    def __init__(self, logdir: str | Path) -> None:
        self.logdir = Path(logdir)
        self._writer: Any = None

    def _scalars(self, record: dict[str, Any], keys: tuple[str, ...]) -> None:
        if self._writer is None:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(self.logdir))
        for key in keys:
            if isinstance(record.get(key), (int, float)):
                self._writer.add_scalar(key, float(record[key]), int(record["step"]))
        self._writer.flush()

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if trainer.world.is_main:
            self._scalars(record, ("train_loss", "lr", "samples_per_s"))

    def on_evaluate(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if trainer.world.is_main:
            self._scalars(record, ("valid_loss", "valid_accuracy", "valid_auc"))

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
