"""The first ``Trainer``: a thin public surface over one fit loop.

It trains any classifier ``nn.Module`` on any re-iterable of ``(inputs, targets)``
batches, evaluates on the validation data every epoch (or every
``eval_every`` steps), keeps the best weights by validation accuracy and stops
early when they stop improving.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TrainerConfig:
    """Optimisation settings. Defaults suit the built-in text classifiers."""

    epochs: int = 4
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    label_smoothing: float = 0.0
    max_grad_norm: float | None = 1.0
    eval_every: int | None = None  # steps; None evaluates at the end of each epoch
    patience: int | None = 2  # evaluations without improvement before stopping
    seed: int = 0
    threads: int | None = None  # torch intra-op threads; None keeps torch's default

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    best_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


class Trainer:
    """Fit a classifier.

    >>> trainer = Trainer(model, train_batches, valid_batches, TrainerConfig(epochs=3))
    >>> result = trainer.fit()
    >>> trainer.evaluate(test_batches)["accuracy"]
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Batches,
        valid_data: Batches | None = None,
        config: TrainerConfig | None = None,
        progress: bool = True,
        on_evaluate: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        self.model = model
        self.train_data = train_data
        self.valid_data = valid_data
        self.config = config or TrainerConfig()
        self.progress = progress
        self.on_evaluate = on_evaluate
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing)

    def fit(self) -> TrainResult:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        steps_per_epoch = len(self.train_data)  # type: ignore[arg-type]
        total = steps_per_epoch * cfg.epochs
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(total, cfg.warmup_fraction))
        loop = _FitLoop(self, optimizer, schedule)
        started = time.perf_counter()
        with _progress_bar(self.progress) as bar:
            task = bar.add_task("train", total=total, loss=float("nan"), acc="-")
            loop.run(total, steps_per_epoch, lambda loss, acc: bar.update(task, advance=1, loss=loss, acc=acc))
        if loop.best_state is not None:
            self.model.load_state_dict(loop.best_state)
        return TrainResult(loop.best_metrics, loop.history, loop.step, time.perf_counter() - started)

    @torch.no_grad()
    def evaluate(self, data: Batches) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        loss_sum, correct, count = 0.0, 0, 0
        for inputs, targets in data:
            logits = self.model(inputs)
            loss_sum += float(self.loss_fn(logits, targets)) * len(targets)
            correct += int((logits.argmax(dim=1) == targets).sum())
            count += len(targets)
        self.model.train(was_training)
        return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1)}


class _FitLoop:
    """Steps, evaluation and early stopping; the state a resumable trainer will checkpoint."""

    def __init__(self, trainer: Trainer, optimizer: torch.optim.Optimizer, schedule: Any) -> None:
        self.trainer = trainer
        self.optimizer = optimizer
        self.schedule = schedule
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.best_metrics: dict[str, float] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stale = 0

    def run(self, total: int, steps_per_epoch: int, tick: Callable[[float, str], None]) -> None:
        trainer, cfg = self.trainer, self.trainer.config
        eval_every = cfg.eval_every or steps_per_epoch
        trainer.model.train()
        for epoch in range(cfg.epochs):
            if hasattr(trainer.train_data, "set_epoch"):
                trainer.train_data.set_epoch(epoch)
            for inputs, targets in trainer.train_data:
                loss = self._train_step(inputs, targets)
                self.step += 1
                best = self.best_metrics.get("valid_accuracy")
                tick(loss, f"{best:.4f}" if best is not None else "-")
                if self.step % eval_every == 0 or self.step == total:
                    if self._evaluate(epoch, loss):
                        return

    def _train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        cfg = self.trainer.config
        loss = self.trainer.loss_fn(self.trainer.model(inputs), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm:
            nn.utils.clip_grad_norm_(self.trainer.model.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.schedule.step()
        return loss.detach().item()

    def _evaluate(self, epoch: int, train_loss: float) -> bool:
        """Record metrics, keep the best weights; True when early stopping says stop."""
        trainer = self.trainer
        record = {"step": self.step, "epoch": epoch, "train_loss": train_loss}
        if trainer.valid_data is not None:
            metrics = trainer.evaluate(trainer.valid_data)
            record |= {"valid_loss": metrics["loss"], "valid_accuracy": metrics["accuracy"]}
        self.history.append(record)
        if trainer.on_evaluate:
            trainer.on_evaluate(record)
        score = record.get("valid_accuracy", -record["train_loss"])
        best = self.best_metrics.get("valid_accuracy", -self.best_metrics.get("train_loss", math.inf))
        if not self.best_metrics or score > best:
            self.best_metrics = record
            self.best_state = copy.deepcopy(trainer.model.state_dict())
            self.stale = 0
            return False
        self.stale += 1
        patience = trainer.config.patience
        return patience is not None and self.stale >= patience


def _warmup_cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  best valid acc {task.fields[acc]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )
