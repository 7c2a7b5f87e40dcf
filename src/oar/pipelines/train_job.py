"""``oar train``: run a YAML job on the training engine, record it in the hub, register its model.

The run is created first (config, dataset version), so everything after it,
including each torchrun worker, finds the job through the run id alone. The run
folder ``OAR_HOME/runs/<id>/`` holds the tokenizer, the checkpoints, TensorBoard
event files and the final weights; the hub row holds the status, the metrics and
the history (per ``log_every`` steps plus every evaluation) as training goes.
A finished text run is exported to ONNX, parity-checked on its test split and
registered under the job's ``name`` (``register_model: false`` or ``--no-register`` skip it).
A click-through-rate run (``task: ctr``) also records the ROC AUC of its validation and test
splits, and its package is the click-probability scorer ``(dense, ids) -> click_probability``
exported with the fused ``oar_dlrm::bag_interact`` op (a custom-domain node, its ONNX Runtime
library shipped in the package).

SIGTERM at any phase (start-up, tokenizer, data, model, checkpoint restore, training,
test evaluation, weight save, export) ends the process with exit 75 and the run
``preempted``; ``--resume`` redoes only what the newest checkpoint does not hold.

Worker entry point (what ``--nproc N`` asks torchrun to start N times)::

    python -m oar.pipelines.train_job RUN_ID
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from oar.hub import Hub, Run
from oar.train import Callback, Trainer, TrainingPreempted, TrainResult
from oar.train.batches import StatefulBatches
from oar.train.checkpoint import Checkpoints
from oar.train.distributed import World, any_rank, leave, world_from_env
from oar.train.folder_lock import FolderLock
from oar.train.job import JobConfig, JobData, build_model, parse_job, prepare_data, validate_job
from oar.train.preemption import EXIT_PREEMPTED, PreemptionWatch, current_phase_watch
from oar.train.trainer import binary_auc, logit_margin

WEIGHTS_FILE = "model.safetensors"
COMPILE_CACHE = "cache/compile"  # under OAR_HOME: compiled graphs and their measured compile times
_FLUSH_SECONDS = 5.0


def run_dir(hub: Hub, run_id: str) -> Path:
    return hub.home / "runs" / run_id


def start_run(job: JobConfig, hub: Hub) -> Run:
    """Validate, record the run, and prepare its folder (the tokenizer is trained here, before any worker)."""
    watch = current_phase_watch()
    dataset = validate_job(job)
    run = hub.runs.start("train", {"job": job.dump()}, hub.register_dataset(dataset))
    try:
        watch.phase("tokenizer")
        prepare_data(job, run_dir(hub, run.id))
    except TrainingPreempted as exc:
        hub.runs.update(run.id, status="preempted", metrics={"preempted_at_step": 0, "preempted_phase": exc.phase})
        exc.run_id = run.id
        raise
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

    def on_fit_start(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.hub.runs.update(self.run_id, metrics={"precision": record["precision"]})

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


def execute(run_id: str, hub: Hub, progress: bool = True, callbacks: Sequence[Callback] = ()) -> Run:
    """Train (or continue) run ``run_id`` in this process; one of N under torchrun. Returns the run.

    ``callbacks`` run on the main process beside the hub's recorder (a caller's own progress display).
    """
    run = hub.runs.get(run_id)
    job, folder = job_of(run), run_dir(hub, run_id)
    world = world_from_env()
    watch = current_phase_watch()
    agree = functools.partial(any_rank, world=world)
    fence = contextlib.ExitStack()
    if world.is_main:  # one writer per run folder; waiting for a stale one is not a failure of the run
        fence.enter_context(FolderLock(folder))
    try:
        if world.is_main:
            hub.runs.update(run_id, status="running")
        watch.phase("data", agree=agree)
        data = prepare_data(job, folder)
        watch.phase("model", agree=agree)
        torch.manual_seed(job.trainer.seed)
        model = build_model(job, data)
        config = dataclasses.replace(
            job.trainer,
            monitor=job.trainer.monitor or ("valid_auc" if data.kind == "ctr" else None),
            checkpoint=dataclasses.replace(job.trainer.checkpoint, dir=str(folder / "checkpoints")),
            tensorboard_dir=str(folder / "tensorboard") if job.tensorboard else None,
            compile_cache_dir=job.trainer.compile_cache_dir or str(hub.home / COMPILE_CACHE),
        )
        hooks = [HubRecorder(hub, run_id), *callbacks] if world.is_main else []
        trainer = Trainer(model, data.train, data.valid, config, progress, callbacks=hooks)
        result = trainer.fit()
        if not world.is_main:
            return hub.runs.get(run_id)
        return _finish(trainer, result, data, job, hub, run_id, world, watch)
    except TrainingPreempted as exc:
        if world.is_main:
            step = exc.step if exc.step >= 0 else _last_checkpoint_step(folder)
            hub.runs.update(
                run_id, status="preempted", metrics={"preempted_at_step": step, "preempted_phase": exc.phase}
            )
        raise
    except KeyboardInterrupt:
        if world.is_main:
            hub.runs.update(run_id, status="interrupted")
        raise
    except BaseException as exc:
        if world.is_main:
            hub.runs.update(run_id, status="failed", metrics={"error": str(exc) or type(exc).__name__})
        raise
    finally:
        leave(world)
        fence.close()


def _last_checkpoint_step(folder: Path) -> int:
    steps = Checkpoints(folder / "checkpoints").steps()
    return steps[-1] if steps else 0


def _finish(
    trainer: Trainer,
    result: TrainResult,
    data: JobData,
    job: JobConfig,
    hub: Hub,
    run_id: str,
    world: World,
    watch: PreemptionWatch,
) -> Run:
    """Test, save, register: each a phase a SIGTERM may stop before (the finished checkpoint holds the rest)."""
    folder = run_dir(hub, run_id)
    watch.phase("evaluate", result.checkpoint)
    test_metrics = trainer.evaluate(data.test, auc=data.kind == "ctr")
    watch.phase("save", result.checkpoint)
    weights = folder / WEIGHTS_FILE
    staging = folder / f".{WEIGHTS_FILE}.{os.getpid()}"
    save_file({k: v.detach().contiguous() for k, v in trainer.model.state_dict().items()}, str(staging))
    os.replace(staging, weights)
    metrics = {
        "test_accuracy": test_metrics["accuracy"],
        "test_loss": test_metrics["loss"],
        "valid_accuracy": result.best_metrics.get("valid_accuracy"),
        "steps": result.steps,
        "train_seconds": result.seconds,
        "train_segments": result.segments,
        "stopped_early": result.stopped_early,
        "resumed_from": result.resumed_from,
        "graph": result.graph,
        "precision": result.precision,
        "weights": str(weights),
        "world_size": world.size,
    }
    if data.kind == "ctr":
        metrics["valid_auc"] = trainer.evaluate(data.valid, auc=True)["auc"]  # of the weights kept
        metrics["test_auc"] = test_metrics["auc"]
    if result.config_changes:
        metrics["config_changes"] = result.config_changes
    hub.runs.update(run_id, metrics=metrics)
    if job.register_model and not hub.runs.get(run_id).metrics.get("model"):
        watch.phase("register", result.checkpoint)
        hub.runs.update(run_id, metrics=_register(trainer, data, job, hub, hub.runs.get(run_id), metrics))
    # past this point nothing is redone on a resume, so a late SIGTERM no longer stops the run
    return hub.runs.finish(run_id, "finished", hub.runs.get(run_id).metrics, result.history)


@torch.no_grad()
def click_auc(model: nn.Module, batches: StatefulBatches, device: torch.device | str = "cpu") -> float:
    """ROC AUC (scikit-learn's) of a two-class model's click margin over ``batches``; NaN when one class is absent."""
    was_training = model.training
    model.eval()
    scores, labels = [], []
    for inputs, targets in batches:
        scores.append(logit_margin(model(inputs.to(device))))
        labels.append(targets)
    model.train(was_training)
    return binary_auc(torch.cat(labels), torch.cat(scores))


def _register(trainer: Trainer, data: JobData, job: JobConfig, hub: Hub, run: Run, metrics: dict) -> dict[str, Any]:
    """Export to ONNX, check it against the trained model on the test split, register it under the job's name."""
    from oar.export import save_text_classifier

    if data.kind == "image":
        return {"model": None, "register_skipped": "packages hold text classifiers and recommenders; image models "
                "are not exported"}  # fmt: skip
    assert run.dataset_name is not None and run.dataset_version is not None
    dataset = hub.datasets.get(run.dataset_name, run.dataset_version)
    package_metrics = {k: v for k, v in metrics.items() if isinstance(v, float)}
    if data.kind == "ctr":
        return _register_recommender(trainer.model, data, job, hub, run.id, package_metrics, dataset.ref)
    assert data.tokenizer is not None
    with tempfile.TemporaryDirectory(dir=hub.artifacts.root / "tmp") as tmp:
        package = save_text_classifier(
            trainer.model.eval(),
            Path(tmp) / "package",
            name=job.name,
            tokenizer=data.tokenizer,
            labels=data.dataset.labels,
            parity_batches=(inputs for inputs, _ in data.test),
            metrics=package_metrics,
            dataset=dataset.ref,
            run_id=run.id,
        )
        current_phase_watch().phase("commit", run.metrics.get("checkpoint"))  # a SIGTERM during the export
        registered = hub.register_model(package.path)
    parity = package.manifest.parity
    return {"model": registered.model_id, "parity": parity.model_dump(mode="json") if parity else None}


def _register_recommender(
    model: nn.Module, data: JobData, job: JobConfig, hub: Hub, run_id: str, metrics: dict, dataset: dict
) -> dict[str, Any]:
    """The served form ``(dense, ids) -> click_probability``, parity-checked on the test split, registered.

    Parity runs on generated inputs (random, edge values: ids in every table's range) and on every
    test batch; the fused op is a custom-domain node whose ONNX Runtime library the package ships.
    """
    from oar.export.module_package import export_module
    from oar.export.onnx import InputSpec
    from oar.models.dlrm import ClickProbability, PackedInputs

    assert isinstance(model, PackedInputs)
    scorer = ClickProbability(model.model).eval()
    features, bag = model.shape
    smallest = min(int(c) for c in data.dataset.card.features["cardinalities"])
    specs = [
        InputSpec([None, model.dense_features], "float32", "dense"),
        InputSpec([None, features, bag], "int64", "ids", value_range=(-1, smallest - 1)),
    ]
    samples = (model.split(inputs) for inputs, _ in data.test)
    with tempfile.TemporaryDirectory(dir=hub.artifacts.root / "tmp") as tmp:
        package = export_module(
            scorer, specs, Path(tmp) / "package", name=job.name, output_names=["click_probability"],
            sample_inputs=samples, metrics=metrics, dataset=dataset, run_id=run_id,
        )  # fmt: skip
        current_phase_watch().phase("commit", hub.runs.get(run_id).metrics.get("checkpoint"))
        registered = hub.register_model(package.path)
    parity = package.manifest.parity
    return {"model": registered.model_id, "parity": parity.model_dump(mode="json") if parity else None}


def main(argv: list[str] | None = None) -> int:
    """torchrun worker: ``python -m oar.pipelines.train_job RUN_ID``; exit 75 when preempted."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m oar.pipelines.train_job RUN_ID", file=sys.stderr)
        return 2
    try:
        with PreemptionWatch():
            execute(args[0], Hub(), progress=False)
    except TrainingPreempted as exc:
        if exc.checkpoint:  # the main process wrote it; the others only stopped
            print(str(exc), file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
