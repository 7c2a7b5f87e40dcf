"""The Trainer's options, grouped: one dataclass for optimisation, one for checkpoints.

They are plain dataclasses (cheap to build in Python) that pydantic validates
with ``extra="forbid"`` when they come from a YAML file, so a misspelt key is an
error that names the key instead of a silently ignored setting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ConfigDict

from oar.train.precision import PRECISIONS
from oar.train.schedules import SCHEDULES

_STRICT = ConfigDict(extra="forbid")
# The validation figures that can pick the best weights and stop early: higher is better for both.
MONITORS = ("valid_accuracy", "valid_auc")


@dataclass
class CheckpointConfig:
    """Where and how often to checkpoint. ``dir=None`` (the Python default) writes none.

    ``oar train`` sets ``dir`` to the run's folder in the hub. With ``resume=True``
    a run whose ``dir`` already holds checkpoints continues from the newest valid one.
    """

    __pydantic_config__ = _STRICT

    dir: str | None = None
    every_steps: int | None = None
    every_seconds: float | None = None
    keep_last: int | None = 3
    resume: bool = True
    preempt_deadline_s: float = 30.0
    # continue from a checkpoint written by different settings or data (refused by default);
    # the changes are recorded in the checkpoint and in ``TrainResult.config_changes``
    allow_changes: bool = False

    def __post_init__(self) -> None:
        for name in ("every_steps", "every_seconds", "keep_last"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"checkpoint.{name} must be positive (or null), got {value}")
        if self.preempt_deadline_s <= 0:
            raise ValueError(f"checkpoint.preempt_deadline_s must be positive, got {self.preempt_deadline_s}")


@dataclass
class TrainerConfig:
    """Optimisation settings. Defaults suit the built-in text classifiers."""

    __pydantic_config__ = _STRICT

    epochs: int = 4
    max_steps: int | None = None  # stop after this many optimizer steps (the schedule spans them)
    lr: float = 2e-3
    weight_decay: float = 0.01
    schedule: str = "warmup_cosine"
    warmup_fraction: float = 0.06
    label_smoothing: float = 0.0
    max_grad_norm: float | None = 1.0
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation)
    eval_every: int | None = None  # steps; None evaluates at the end of each epoch
    patience: int | None = 2  # evaluations without improvement before stopping
    restore_best: bool = True  # end with the best weights by the monitored figure, not the last
    monitor: str | None = None  # "valid_accuracy" | "valid_auc" (two classes); None: the task's own
    log_every: int = 10  # steps between training records (history, callbacks)
    seed: int = 0
    threads: int | None = None  # torch intra-op threads; None keeps torch's default
    device: str = "cpu"
    precision: str = "32"  # "32" | "bf16-mixed" | "16-mixed"
    recompute: bool | list[str] = False  # True: every block (see oar.train.recompute); or module names
    mode: str | None = None  # "dynamic" | "static"; None follows oar.enable_static()/disable_static()
    compile_backend: str = "inductor"
    compile_probe_steps: int = 5
    compile_min_speedup: float = 1.0
    compile_policy: str = "auto"  # "auto": compile only when the steps left can repay it; "always": probe anyway
    compile_cache_dir: str | None = None  # compiled artifacts and measured compile times, reused across runs
    precision_probe: bool = True  # time mixed precision against float32 at start; fall back when it is slower
    tensorboard_dir: str | None = None
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        if isinstance(self.checkpoint, dict):
            self.checkpoint = CheckpointConfig(**self.checkpoint)
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        for name in ("accumulate", "log_every", "compile_probe_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "eval_every", "patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or null), got {value}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got '{self.precision}'")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got '{self.schedule}'")
        if self.compile_policy not in ("auto", "always"):
            raise ValueError(f"compile_policy must be 'auto' or 'always'; got '{self.compile_policy}'")
        if self.monitor not in (None, *MONITORS):
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}; got '{self.monitor}'")
        if self.mode not in (None, "dynamic", "static"):
            raise ValueError(f"mode must be 'dynamic' or 'static'; got '{self.mode}'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
