"""The fit loop: micro-steps, optimizer steps, evaluation, checkpoints, preemption.

Everything that decides what the next step computes lives in ``FitState`` plus
the optimizer, scheduler, scaler, RNG and data position; all of it goes into a
checkpoint, and ``restore`` puts all of it back. That is the whole contract of
bit-exact resume: nothing the loop reads may live anywhere else.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from oar.train import distributed
from oar.train.batches import StatefulBatches
from oar.train.checkpoint import Checkpoint, Checkpoints
from oar.train.graph import GraphMode
from oar.train.precision import Precision, PrecisionReport
from oar.train.preemption import PreemptionWatch, TrainingPreempted
from oar.train.rng import capture_rng, fresh_rank_rng, restore_rng

if TYPE_CHECKING:
    from oar.train.trainer import Trainer

log = logging.getLogger("oar.train")


@dataclass
class FitState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    position: int = 0  # batches of ``epoch`` already trained on
    samples: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0
    stopped_early: bool = False
    finished: bool = False
    segments: list[dict[str, Any]] = field(default_factory=list)  # earlier processes' share of the run
    config_changes: list[dict[str, Any]] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "samples": self.samples,
            "history": self.history,
            "best_metrics": self.best_metrics,
            "stale": self.stale,
            "stopped_early": self.stopped_early,
            "finished": self.finished,
            "config_changes": self.config_changes,
        }


@dataclass
class Parts:
    """What ``Trainer.fit`` builds and the loop drives."""

    module: torch.nn.Module  # what runs forward: the model, or DDP around it
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    precision: Precision
    graph: GraphMode
    checkpoints: Checkpoints | None
    watch: PreemptionWatch
    total_steps: int


class FitLoop:
    def __init__(
        self,
        trainer: Trainer,
        parts: Parts,
        fingerprint: dict[str, Any] | None = None,
        precision: PrecisionReport | None = None,
    ) -> None:
        self.trainer = trainer
        self.parts = parts
        self.fingerprint = fingerprint or {}
        self.precision = precision
        self.state = FitState()
        self.last_checkpoint: str | None = None
        self._checkpointed_step = -1
        self._last_checkpoint_time = time.monotonic()
        self._last_log = (time.perf_counter(), 0)
        self._segment: tuple[float, int, int] | None = None  # this process: (started, from step, from samples)

    def segments(self) -> list[dict[str, Any]]:
        """The run's training time, one entry per process that advanced it; the last is this one, so far."""
        s, done = self.state, list(self.state.segments)
        if self._segment is not None and s.step > self._segment[1]:
            started, first, samples = self._segment
            done.append(
                {
                    "from_step": first,
                    "to_step": s.step,
                    "seconds": round(time.perf_counter() - started, 3),
                    "samples": s.samples - samples,
                    "world_size": self.trainer.world.size,
                }
            )
        return done

    # --- checkpoints -------------------------------------------------------------------------

    def restore(self, checkpoint: Checkpoint) -> None:
        """Put every piece of state back; RNG last, so nothing after it draws before step ``step + 1``."""
        trainer, parts, meta = self.trainer, self.parts, checkpoint.meta
        trainer.model.load_state_dict(checkpoint.weights("model"))
        state = checkpoint.state()
        parts.optimizer.load_state_dict(state["optimizer"])
        parts.schedule.load_state_dict(state["scheduler"])
        parts.precision.load_state_dict(state["precision"])
        s = self.state
        s.step, s.epoch, s.position, s.samples = (
            checkpoint.step,
            meta["epoch"],
            meta["position"],
            meta["samples"],
        )
        s.history, s.best_metrics, s.stale = meta["history"], meta["best_metrics"], meta["stale"]
        s.stopped_early, s.finished = meta["stopped_early"], meta["finished"]
        s.best_state = checkpoint.weights("best") if checkpoint.has_weights("best") else None
        s.segments = list(meta.get("segments", []))
        parts.graph.load_state_dict(meta.get("graph", {}))
        self.last_checkpoint = str(checkpoint.path)
        self._checkpointed_step = checkpoint.step
        self._restore_rng(state, checkpoint.step)

    def _restore_rng(self, state: dict[str, Any], step: int) -> None:
        """Each rank its own generators; a rank the checkpoint has none for is seeded from (seed, rank, step)."""
        rank = self.trainer.world.rank
        per_rank = state.get("rng_ranks") or [state["rng"]]
        if rank < len(per_rank):
            restore_rng(per_rank[rank])
        else:
            fresh_rank_rng(self.trainer.config.seed, rank, step)

    def checkpoint(self, reason: str) -> None:
        parts, trainer = self.parts, self.trainer
        if parts.checkpoints is None or self._checkpointed_step == self.state.step:
            return
        started = time.perf_counter()
        rngs = distributed.all_gather(capture_rng(), trainer.world)  # every rank draws its own masks
        if trainer.world.is_main:
            weights = {"model": trainer.model.state_dict()}
            if self.state.best_state is not None:
                weights["best"] = self.state.best_state
            state = {
                "optimizer": parts.optimizer.state_dict(),
                "scheduler": parts.schedule.state_dict(),
                "precision": parts.precision.state_dict(),
                "rng": rngs[0],
                "rng_ranks": rngs,
            }
            meta = {
                **self.state.meta(),
                "reason": reason,
                "world_size": trainer.world.size,
                "total_steps": parts.total_steps,
                "config": trainer.config.to_dict(),
                "fingerprint": self.fingerprint,
                "precision": self.precision.to_dict() if self.precision else None,
                "graph": parts.graph.state_dict(),
                "segments": self.segments(),
            }
            if meta["precision"] is None:
                del meta["precision"]
            self.last_checkpoint = str(parts.checkpoints.write(self.state.step, weights, state, meta))
        distributed.barrier(trainer.world)
        self._checkpointed_step = self.state.step
        self._last_checkpoint_time = time.monotonic()
        seconds = time.perf_counter() - started
        trainer.emit(
            "on_checkpoint",
            {"step": self.state.step, "path": self.last_checkpoint, "seconds": seconds, "reason": reason},
        )

    # --- the loop ----------------------------------------------------------------------------

    def run(self, tick: Callable[[dict[str, Any]], None]) -> None:
        cfg, s = self.trainer.config, self.state
        if s.finished:
            return
        now = time.perf_counter()
        self._segment = (now, s.step, s.samples)
        self._last_log = (now, s.samples)  # the throughput timer starts here, at the restored count
        self.trainer.module_train()
        while s.epoch < cfg.epochs:
            for window in self._windows():
                loss, samples = self._optimizer_step(window)
                s.position += len(window)
                s.step += 1
                s.samples += samples
                if self._after_step(loss, tick):
                    s.finished = True
                    self.checkpoint("finished")
                    return
            s.epoch += 1
            s.position = 0
        s.finished = True
        self.checkpoint("finished")

    def _windows(self) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
        """The epoch's batches from the saved position, grouped per optimizer step."""
        data, s, accumulate = self.trainer.train_data, self.state, self.trainer.config.accumulate
        batches: Iterator[Any]
        if isinstance(data, StatefulBatches):
            data.load_state_dict({**data.state_dict(), "epoch": s.epoch, "position": s.position})
            batches = iter(data)
        else:
            if hasattr(data, "set_epoch"):
                data.set_epoch(s.epoch)
            if s.position:
                log.warning("train data has no state_dict(); skipping %d batches to resume", s.position)
            batches = itertools.islice(iter(data), s.position, None)
        left = len(data) - s.position  # type: ignore[arg-type]
        while left > 0:
            size = min(accumulate, left)
            window = list(itertools.islice(batches, size))
            if not window:
                return
            left -= len(window)
            yield window

    def _optimizer_step(self, window: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, int]:
        trainer, parts, world = self.trainer, self.parts, self.trainer.world
        losses, samples = [], 0
        for i, (inputs, targets) in enumerate(window):
            inputs = distributed.shard(inputs, world).to(trainer.device)
            targets = distributed.shard(targets, world).to(trainer.device)
            if len(targets) == 0:
                continue
            samples += len(targets) * world.size
            last = i == len(window) - 1
            sync = contextlib.nullcontext() if last or not world.distributed else parts.module.no_sync()
            with sync:
                losses.append(
                    parts.graph.run(self._micro_step(inputs, targets, len(window)), parts.optimizer.zero_grad)
                )
        parts.precision.step(parts.optimizer, trainer.model.parameters(), trainer.config.max_grad_norm)
        parts.schedule.step()
        parts.optimizer.zero_grad(set_to_none=True)
        return float(torch.stack(losses).mean()) if losses else math.nan, samples

    def _micro_step(self, inputs: torch.Tensor, targets: torch.Tensor, window: int) -> Any:
        precision = self.parts.precision

        def step(forward: Callable[..., torch.Tensor]) -> torch.Tensor:
            with precision.autocast():
                loss = forward(inputs, targets)
            precision.backward(loss / window if window > 1 else loss)
            return loss.detach().float()

        return step

    def _after_step(self, loss: float, tick: Callable[[dict[str, Any]], None]) -> bool:
        """Log, evaluate, checkpoint, honour SIGTERM; True when training should stop."""
        trainer, cfg, s, parts = self.trainer, self.trainer.config, self.state, self.parts
        record = {"step": s.step, "epoch": s.epoch, "train_loss": loss, "lr": parts.schedule.get_last_lr()[0]}
        last = s.step >= parts.total_steps
        if s.step % cfg.log_every == 0 or last:
            now = time.perf_counter()
            record["samples_per_s"] = round((s.samples - self._last_log[1]) / max(now - self._last_log[0], 1e-9), 2)
            self._last_log = (now, s.samples)
            s.history.append(record)
            trainer.emit("on_step_end", record)
        end_of_epoch = s.position >= len(trainer.train_data)  # type: ignore[arg-type]
        due = s.step % cfg.eval_every == 0 if cfg.eval_every else end_of_epoch
        stop = self._evaluate(record) if due or last else False
        tick(record)
        if stop or last:
            s.stopped_early = stop and not last
            return True
        every = cfg.checkpoint
        if (every.every_steps and s.step % every.every_steps == 0) or (
            every.every_seconds and time.monotonic() - self._last_checkpoint_time >= every.every_seconds
        ):
            self.checkpoint("periodic")
        if distributed.any_rank(parts.watch.requested, trainer.world):
            self._preempt()
        return False

    def _preempt(self) -> None:
        watchdog = self.parts.watch.watchdog()
        try:
            self.checkpoint("preempted")
        finally:
            watchdog.cancel()
        raise TrainingPreempted(self.state.step, self.last_checkpoint if self.parts.checkpoints else None)

    def _evaluate(self, record: dict[str, Any]) -> bool:
        """Record validation metrics, keep the best weights; True when early stopping says stop."""
        trainer, s = self.trainer, self.state
        record = {k: v for k, v in record.items() if k in ("step", "epoch", "train_loss")}
        monitor = trainer.monitor
        if trainer.valid_data is not None:
            metrics = trainer.evaluate(trainer.valid_data, auc=monitor == "valid_auc")
            record |= {"valid_loss": metrics["loss"], "valid_accuracy": metrics["accuracy"]}
            if "auc" in metrics:
                record["valid_auc"] = metrics["auc"]
        if s.history and s.history[-1]["step"] == s.step:
            s.history[-1].update(record)
        else:
            s.history.append(record)
        trainer.emit("on_evaluate", record)
        score = record.get(monitor, -record["train_loss"])
        best = s.best_metrics.get(monitor, -s.best_metrics.get("train_loss", math.inf))
        if not s.best_metrics or score > best:
            s.best_metrics = record
            s.best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            s.stale = 0
            return False
        s.stale += 1
        patience = trainer.config.patience
        return patience is not None and s.stale >= patience
