"""Static mode: compile the training step, but never let compiling make a run slower or break it.

The order is chosen so the decision can be made before the compile is paid:

1. ``probe_steps`` micro-steps run eagerly, timed (they are ordinary steps of the run);
2. with ``policy="auto"`` the compile is attempted only if it can pay for itself: even a
   compiled step twice as fast as eager (``_BEST_CASE_SPEEDUP``; on these CPUs we measured
   0.6-1.0x) must save more over the micro-steps left than the compile is expected to cost.
   The expected cost is the last compile of the same graph measured on this machine (kept in
   ``cache_dir``), else a prior per backend (inductor: 20 s or 100 eager steps, the larger).
   ``policy="always"`` skips this check;
3. one compiled step pays the compile (timed), ``probe_steps`` more run compiled, timed;
4. the compile being sunk, the faster of the two is kept (compiled must be ``min_speedup`` x
   eager). A compile error at any point falls back to eager and the report says why, with the
   graph breaks dynamo counted.

Every decision and the probe's progress are in ``state_dict()``, which goes into each
checkpoint: a resumed run uses the graph the interrupted one chose (and continues a probe
where it was), so it stays bit-exact. With ``cache_dir`` set, inductor's compiled artifacts
live there too (``TORCHINDUCTOR_CACHE_DIR``) and are reused by later runs and resumes.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("oar.train")

StepFn = Callable[[Callable[..., torch.Tensor]], torch.Tensor]

_BEST_CASE_SPEEDUP = 2.0
_PRIOR_COMPILE_S = {"inductor": 20.0}  # measured here: 20 s (small MLP) to 52 s (2-block Transformer)
# a first inductor compile cost 130 (Transformer) to 355 (ResNet-18) eager steps here: a prior in steps
# scales with the machine's load, which slows the compile as much as the steps
_PRIOR_COMPILE_STEPS = {"inductor": 100}
_PRIOR_COMPILE_S_OTHER = 2.0  # "eager", "aot_eager": dynamo tracing only
_COSTS_FILE = "compile_seconds.json"


@dataclass
class GraphReport:
    """What the run asked for, what it used, and the measurements behind the choice."""

    requested: str
    used: str
    reason: str = ""
    compile_s: float | None = None
    expected_compile_s: float | None = None
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
        *,
        policy: str = "always",
        remaining: Callable[[], int] = lambda: 0,
        cache_dir: str | None = None,
        graph_key: str = "",
    ) -> None:
        if mode not in ("dynamic", "static"):
            raise ValueError(f"mode must be 'dynamic' or 'static'; got '{mode}'")
        self.eager = forward
        self.compiled: Callable[..., torch.Tensor] | None = None
        self.backend = backend
        self.probe_steps = max(1, probe_steps)
        self.min_speedup = min_speedup
        self.policy = policy
        self.remaining = remaining  # micro-steps left in the run, for the pay-off estimate
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.graph_key = f"{backend}|{torch.__version__}|{graph_key}"
        self.report = GraphReport(requested=mode, used=mode)
        self._phase = "eager" if mode == "static" else "done"
        self._times: dict[str, list[float]] = {"compiled": [], "eager": []}

    # --- state (checkpointed) ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"phase": self._phase, "times": self._times, "report": self.report.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where the interrupted run was: same probe phase, or the same graph it chose."""
        if self.report.requested == "dynamic" or not state:
            return  # a run asked to be dynamic now stays dynamic; nothing to continue
        self._phase = state["phase"]
        self._times = {k: list(v) for k, v in state["times"].items()}
        self.report = GraphReport(**state["report"])

    # --- running -------------------------------------------------------------------------------

    def run(self, step: StepFn, on_failure: Callable[[], None]) -> torch.Tensor:
        """Run ``step(forward)`` with this phase's forward; fall back if the compiled one fails."""
        if self._phase == "done":
            if self.report.used != "static":
                return step(self.eager)
            use_compiled = True
        else:
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
        if self._phase != "done":
            self._observe(time.perf_counter() - started)
        return loss

    def _compiled(self) -> Callable[..., torch.Tensor]:
        if self.compiled is None:
            if self.cache_dir is not None:
                os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self.cache_dir / "inductor"))
            torch._dynamo.utils.counters["graph_break"].clear()
            self.compiled = torch.compile(self.eager, backend=self.backend)
        return self.compiled

    def _observe(self, seconds: float) -> None:
        if self._phase == "compile":
            self.report.compile_s = round(seconds, 3)
            self._remember_compile_cost(seconds)
            self._phase = "compiled"
            return
        times = self._times[self._phase]
        times.append(seconds)
        if len(times) < self.probe_steps:
            return
        if self._phase == "eager":
            self._decide_to_compile()
        else:
            self._decide()

    def _decide_to_compile(self) -> None:
        """After the eager probe: compile only if the best case could repay the expected compile time."""
        eager = statistics.median(self._times["eager"])
        self.report.eager_step_ms = round(eager * 1000, 3)
        expected = self._expected_compile_cost(eager)
        self.report.expected_compile_s = round(expected, 3)
        left = self.remaining()
        best_saving = eager * left * (1 - 1 / _BEST_CASE_SPEEDUP)
        if self.policy == "auto" and best_saving <= expected:
            self.report.used, self._phase = "dynamic", "done"
            self.report.reason = (
                f"not compiled: {left} steps left at {eager * 1000:.2f} ms eager could save at most "
                f"{best_saving:.1f} s, less than the expected {expected:.1f} s compile"
            )
            log.warning("static mode fell back to dynamic: %s", self.report.reason)
            return
        self._phase = "compile"

    def _decide(self) -> None:
        compiled = statistics.median(self._times["compiled"])
        eager = statistics.median(self._times["eager"])
        self.report.compiled_step_ms = round(compiled * 1000, 3)
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

    # --- compile cost memory -------------------------------------------------------------------

    def _expected_compile_cost(self, eager_step_s: float) -> float:
        known = _read_costs(self.cache_dir).get(self.graph_key) if self.cache_dir else None
        if known is not None:
            return float(known)
        prior = _PRIOR_COMPILE_S.get(self.backend, _PRIOR_COMPILE_S_OTHER)
        return max(prior, _PRIOR_COMPILE_STEPS.get(self.backend, 0) * eager_step_s)

    def _remember_compile_cost(self, seconds: float) -> None:
        if self.cache_dir is None:
            return
        costs = _read_costs(self.cache_dir)
        costs[self.graph_key] = round(seconds, 3)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = self.cache_dir / f".{_COSTS_FILE}.{os.getpid()}"
        staging.write_text(json.dumps(costs, indent=1, sort_keys=True))
        os.replace(staging, self.cache_dir / _COSTS_FILE)


def _read_costs(cache_dir: Path | None) -> dict[str, float]:
    if cache_dir is None:
        return {}
    try:
        costs = json.loads((cache_dir / _COSTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return costs if isinstance(costs, dict) else {}


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
