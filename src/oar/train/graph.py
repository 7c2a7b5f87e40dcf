"""Static mode: compile the training step, but never let compiling make a run slower or break it.

The first micro-step runs compiled (it pays the compile), the next ``probe_steps``
run compiled and then as many run eagerly, each timed forward + backward. The
faster one is kept. A compile error at any point, or a compiled step slower than
``min_speedup`` x eager, switches to dynamic and the ``GraphReport`` says why,
with the graph breaks dynamo counted.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

log = logging.getLogger("oar.train")

StepFn = Callable[[Callable[..., torch.Tensor]], torch.Tensor]


@dataclass
class GraphReport:
    """What the run asked for, what it used, and the measurements behind the choice."""

    requested: str
    used: str
    reason: str = ""
    compile_s: float | None = None
    eager_step_ms: float | None = None
    compiled_step_ms: float | None = None
    graph_breaks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GraphMode:
    """Chooses per micro-step between the eager forward and a compiled one, and keeps the report."""

    def __init__(
        self,
        forward: Callable[..., torch.Tensor],
        mode: str,
        backend: str = "inductor",
        probe_steps: int = 5,
        min_speedup: float = 1.0,
    ) -> None:
        if mode not in ("dynamic", "static"):
            raise ValueError(f"mode must be 'dynamic' or 'static'; got '{mode}'")
        self.eager = forward
        self.compiled: Callable[..., torch.Tensor] | None = None
        self.backend = backend
        self.probe_steps = max(1, probe_steps)
        self.min_speedup = min_speedup
        self.report = GraphReport(requested=mode, used=mode)
        self._phase = "compile" if mode == "static" else "done"
        self._times: dict[str, list[float]] = {"compiled": [], "eager": []}

    def run(self, step: StepFn, on_failure: Callable[[], None]) -> torch.Tensor:
        """Run ``step(forward)`` with this phase's forward; fall back if the compiled one fails."""
        if self._phase == "done":
            return step(self.compiled or self.eager)
        use_compiled = self._phase in ("compile", "compiled")
        started = time.perf_counter()
        try:
            loss = step(self._compiled() if use_compiled else self.eager)
        except Exception as exc:
            if not use_compiled:
                raise
            on_failure()
            self._fall_back(f"compiling failed: {_first_line(exc)}")
            return step(self.eager)
        self._observe(time.perf_counter() - started)
        return loss

    def _compiled(self) -> Callable[..., torch.Tensor]:
        if self.compiled is None:
            torch._dynamo.utils.counters["graph_break"].clear()
            self.compiled = torch.compile(self.eager, backend=self.backend)
        return self.compiled

    def _observe(self, seconds: float) -> None:
        if self._phase == "compile":
            self.report.compile_s = round(seconds, 3)
            self._phase = "compiled"
            return
        times = self._times[self._phase]
        times.append(seconds)
        if len(times) < self.probe_steps:
            return
        if self._phase == "compiled":
            self._phase = "eager"
            return
        self._decide()

    def _decide(self) -> None:
        compiled = statistics.median(self._times["compiled"])
        eager = statistics.median(self._times["eager"])
        self.report.compiled_step_ms = round(compiled * 1000, 3)
        self.report.eager_step_ms = round(eager * 1000, 3)
        self.report.graph_breaks = _graph_breaks()
        if eager / compiled < self.min_speedup:
            self._fall_back(
                f"compiled step {compiled * 1000:.2f} ms vs eager {eager * 1000:.2f} ms "
                f"(speed-up {eager / compiled:.2f}x < required {self.min_speedup:.2f}x)"
            )
            return
        self._phase = "done"
        self.report.reason = f"compiled step {eager / compiled:.2f}x faster than eager"
        log.info("static mode kept: %s", self.report.reason)

    def _fall_back(self, reason: str) -> None:
        self.report.graph_breaks = self.report.graph_breaks or _graph_breaks()
        self.report.used, self.report.reason = "dynamic", reason
        self.compiled, self._phase = None, "done"
        breaks = f"; graph breaks: {'; '.join(self.report.graph_breaks)}" if self.report.graph_breaks else ""
        log.warning("static mode fell back to dynamic: %s%s", reason, breaks)


def _graph_breaks() -> list[str]:
    """Each distinct break dynamo counted: its headline and its explanation, with how often it happened."""
    found = []
    for reason, count in torch._dynamo.utils.counters["graph_break"].items():
        lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
        explanation = next(
            (line.removeprefix("Explanation: ") for line in lines if line.startswith("Explanation:")), ""
        )
        found.append(f"{lines[0] if lines else reason}{': ' + explanation if explanation else ''} (x{count})")
    return found


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__
