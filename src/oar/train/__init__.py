"""Training: the ``Trainer`` and the batch iterables it consumes."""

from oar.train.batches import TextBatches
from oar.train.trainer import Trainer, TrainerConfig, TrainResult

__all__ = ["TextBatches", "TrainResult", "Trainer", "TrainerConfig"]
