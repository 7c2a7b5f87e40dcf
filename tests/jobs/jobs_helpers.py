"""A tiny real training job (digits, a small CNN, 32 steps, a checkpoint every 4) and a scheduler driver."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

import oar.jobs  # noqa: F401  (job tables on the hub's Base)

STEPS = 32  # 256 images / 16 a batch x 2 epochs
EVERY = 4
JOB: dict[str, Any] = {
    "name": "digits-tiny",
    "data": {"dataset": "digits", "limit": 256, "valid_limit": 64, "batch_size": 16},
    "model": {"arch": "cnn", "options": {"width": 8, "dropout": 0.2}},
    "trainer": {
        "epochs": 2,
        "log_every": 1,
        "eval_every": 8,
        "patience": None,
        "restore_best": False,
        "threads": 1,
        "checkpoint": {"every_steps": EVERY, "keep_last": 3},
    },
    "tensorboard": False,
}


def write_job(folder: Path, name: str = "job.yaml", epochs: int = 2, **resources: Any) -> Path:
    """The tiny job (``epochs`` x 16 steps), with a ``resources:`` section if any are given."""
    job = {**JOB, "trainer": {**JOB["trainer"], "epochs": epochs}}
    path = folder / name
    path.write_text(yaml.safe_dump({**job, "resources": resources} if resources else job))
    return path


def drive(
    scheduler: Any, done: Callable[[], bool], timeout: float, each_tick: Callable[[], None] | None = None
) -> None:
    """Tick ``scheduler`` until ``done()``; ``each_tick`` runs after every tick (to inject preemptions)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the scheduler did not finish in time"
        scheduler.tick()
        if each_tick is not None:
            each_tick()
        time.sleep(0.1)
