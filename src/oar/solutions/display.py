"""The progress display of a recipe run: one bar for the steps, one for the step in progress.

Training reports its optimizer steps through a trainer callback (``TrainingProgress``), so the
training bar lives in the same live display instead of a second one competing for the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class StepDisplay:
    """``with StepDisplay(console, steps) as display: with display.step("train"): ...``"""

    def __init__(self, console: Console, steps: list[str]) -> None:
        self.console = console
        self.steps = steps
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._overall = self.progress.add_task("recipe", total=len(steps))
        self._current: Any = None
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> StepDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        number = len(self.seconds) + 1
        label = f"[{number}/{len(self.steps)}] {name}"
        self._current = self.progress.add_task(label, total=None)
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self.console.print(f"[bold red]✗[/] {label} failed after {time.perf_counter() - started:.1f} s")
            raise
        finally:
            self.progress.remove_task(self._current)
            self._current = None
        self.seconds[name] = time.perf_counter() - started
        self.progress.advance(self._overall)
        self.console.print(f"[green]✓[/] {label} ({self.seconds[name]:.1f} s)", highlight=False)

    def note(self, text: str) -> None:
        self.console.print(f"    {text}", highlight=False, soft_wrap=True)

    def update(self, completed: int, total: int | None, detail: str = "") -> None:
        """Move the current step's bar (training steps, requests sent)."""
        if self._current is None:
            return
        task = self.progress.tasks[[t.id for t in self.progress.tasks].index(self._current)]
        description = task.description.split(" · ")[0] + (f" · {detail}" if detail else "")
        self.progress.update(self._current, completed=completed, total=total, description=description)


def training_progress(display: StepDisplay) -> Any:
    """A trainer callback that moves the display's bar; imported lazily because it subclasses a torch-side class."""
    from oar.train.callbacks import Callback

    class TrainingProgress(Callback):
        def __init__(self) -> None:
            self.total: int | None = None

        def on_fit_start(self, trainer: Any, record: dict[str, Any]) -> None:
            self.total = int(record["total_steps"])
            display.update(int(record["step"]), self.total, "training")

        def on_step_end(self, trainer: Any, record: dict[str, Any]) -> None:
            display.update(int(record["step"]), self.total, f"loss {record['train_loss']:.3f}")

        def on_evaluate(self, trainer: Any, record: dict[str, Any]) -> None:
            display.update(int(record["step"]), self.total, f"valid acc {record['valid_accuracy']:.3f}")

    return TrainingProgress()
