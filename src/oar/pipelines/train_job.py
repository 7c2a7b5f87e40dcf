"""``oar train``: run a YAML job on the training engine and record it in the hub.

The run is created first (config, dataset version), so everything after it,
including each torchrun worker, finds the job through the run id alone. The run
folder ``OAR_HOME/runs/<id>/`` holds the tokenizer, the checkpoints, TensorBoard
event files and the final weights; the hub row holds the status, the metrics and
the history (per ``log_every`` steps plus every evaluation) as training goes.

Worker entry point (what ``--nproc N`` asks torchrun to start N times)::

    python -m oar.pipelines.train_job RUN_ID
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from oar.hub import Hub, Run
from oar.train import Callback, Trainer, TrainingPreempted, TrainResult
from oar.train.distributed import World, leave, world_from_env
from oar.train.job import JobConfig, build_model, parse_job, prepare_data, validate_job
from oar.train.preemption import EXIT_PREEMPTED

WEIGHTS_FILE = "model.safetensors"
_FLUSH_SECONDS = 5.0


def run_dir(hub: Hub, run_id: str) -> Path:
    return hub.home / "runs" / run_id


def start_run(job: JobConfig, hub: Hub) -> Run:
    """Validate, record the run, and prepare its folder (the tokenizer is trained here, before any worker)."""
    dataset = validate_job(job)
    run = hub.runs.start("train", {"job": job.dump()}, hub.register_dataset(dataset))
    try:
        prepare_data(job, run_dir(hub, run.id))
    except BaseException as exc:
        hub.runs.update(run.id, status="failed", metrics={"error": str(exc) or type(exc).__name__})
        raise
    return run


def job_of(run: Run) -> JobConfig:
    return parse_job(run.config.get("job"), f"run {run.id} config")


class HubRecorder(Callback):
    """Keeps the run's row current: history at each evaluation and checkpoint, and every few seconds."""

    def __init__(self, hub: Hub, run_id: str) -> None:
        self.hub, self.run_id = hub, run_id
        self._flushed = time.monotonic()

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if time.monotonic() - self._flushed >= _FLUSH_SECONDS:
            self._flush(trainer)

    def on_evaluate(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self._flush(trainer)

    def on_checkpoint(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self._flush(trainer, {"checkpoint": record["path"], "checkpoint_step": record["step"]})

    def _flush(self, trainer: Trainer, metrics: dict[str, Any] | None = None) -> None:
        self.hub.runs.update(self.run_id, metrics=metrics, history=trainer.state.history)
        self._flushed = time.monotonic()


def execute(run_id: str, hub: Hub, progress: bool = True) -> Run:
    """Train (or continue) run ``run_id`` in this process; one of N under torchrun. Returns the run."""
    run = hub.runs.get(run_id)
    job, folder = job_of(run), run_dir(hub, run_id)
    world = world_from_env()
    try:
        data = prepare_data(job, folder)
        torch.manual_seed(job.trainer.seed)
        model = build_model(job, data)
        config = dataclasses.replace(
            job.trainer,
            checkpoint=dataclasses.replace(job.trainer.checkpoint, dir=str(folder / "checkpoints")),
            tensorboard_dir=str(folder / "tensorboard") if job.tensorboard else None,
        )
        callbacks = [HubRecorder(hub, run_id)] if world.is_main else []
        if world.is_main:
            hub.runs.update(run_id, status="running")
        trainer = Trainer(model, data.train, data.valid, config, progress, callbacks=callbacks)
        result = _fit(trainer, hub, run_id, world)
        return _finish(trainer, result, data.test, hub, run_id, folder, world)
    finally:
        leave(world)


def _fit(trainer: Trainer, hub: Hub, run_id: str, world: World) -> TrainResult:
    try:
        return trainer.fit()
    except TrainingPreempted as exc:
        if world.is_main:
            hub.runs.update(run_id, status="preempted", metrics={"preempted_at_step": exc.step})
        raise
    except KeyboardInterrupt:
        if world.is_main:
            hub.runs.update(run_id, status="interrupted")
        raise
    except BaseException as exc:
        if world.is_main:
            hub.runs.update(run_id, status="failed", metrics={"error": str(exc) or type(exc).__name__})
        raise


def _finish(trainer: Trainer, result: TrainResult, test: Any, hub: Hub, run_id: str, folder: Path, world: World) -> Run:
    if not world.is_main:
        return hub.runs.get(run_id)
    test_metrics = trainer.evaluate(test)
    weights = folder / WEIGHTS_FILE
    save_file({k: v.detach().contiguous() for k, v in trainer.model.state_dict().items()}, str(weights))
    metrics = {
        "test_accuracy": test_metrics["accuracy"],
        "test_loss": test_metrics["loss"],
        "valid_accuracy": result.best_metrics.get("valid_accuracy"),
        "steps": result.steps,
        "train_seconds": result.seconds,
        "stopped_early": result.stopped_early,
        "resumed_from": result.resumed_from,
        "graph": result.graph,
        "weights": str(weights),
        "world_size": world.size,
    }
    hub.runs.update(run_id, metrics=metrics)
    return hub.runs.finish(run_id, "finished", hub.runs.get(run_id).metrics, result.history)


def main(argv: list[str] | None = None) -> int:
    """torchrun worker: ``python -m oar.pipelines.train_job RUN_ID``; exit 75 when preempted."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m oar.pipelines.train_job RUN_ID", file=sys.stderr)
        return 2
    try:
        execute(args[0], Hub(), progress=False)
    except TrainingPreempted as exc:
        if exc.checkpoint:  # the main process wrote it; the others only stopped
            print(str(exc), file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
