"""Training: the ``Trainer``, its options, stateful batch iterables, checkpoints, callbacks."""

from oar.train.batches import StatefulBatches, TensorBatches, TextBatches
from oar.train.callbacks import Callback, TensorBoardLogger
from oar.train.checkpoint import Checkpoints
from oar.train.preemption import EXIT_PREEMPTED, TrainingPreempted
from oar.train.trainer import CheckpointConfig, Trainer, TrainerConfig, TrainResult

__all__ = [
    "EXIT_PREEMPTED",
    "Callback",
    "CheckpointConfig",
    "Checkpoints",
    "StatefulBatches",
    "TensorBatches",
    "TensorBoardLogger",
    "TextBatches",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "TrainingPreempted",
]
