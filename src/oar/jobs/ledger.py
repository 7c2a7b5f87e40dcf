"""The cost ledger: what each attempt of a job cost, summed per run and per model version.

An attempt's cost is the node-seconds it held (workers x CPUs / node CPUs x wall seconds) times its
pool's price per node-hour, spot discount applied. Beside the money it counts what spot costs in work:
preemptions, steps redone after a hard loss (steps trained after the last checkpoint, which the next
attempt trains again) and the seconds spent writing checkpoints.

>>> summary = run_cost(store, run_id)
>>> summary.dollars, summary.preemptions, summary.steps_redone
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from oar.hub import Hub
from oar.jobs.entities import Attempt
from oar.jobs.store import JobStore, now

PREEMPTED_OUTCOMES = frozenset({"preempted", "killed", "lost"})


@dataclass(frozen=True)
class CostSummary:
    attempts: tuple[Attempt, ...]
    dollars: float
    node_seconds: float
    preemptions: int
    steps_redone: int
    checkpoint_seconds: float
    dollars_by_pool: dict[str, float] = field(default_factory=dict)

    @property
    def wasted_dollars(self) -> float:
        """Money spent on steps that were trained again: each attempt's cost per step x its redone steps."""
        total = 0.0
        for attempt in self.attempts:
            steps = attempt.last_step - attempt.start_step
            if attempt.steps_redone and steps > 0:
                total += attempt.cost(now()) * attempt.steps_redone / steps
        return total


def summarize(attempts: list[Attempt]) -> CostSummary:
    moment = now()
    by_pool: dict[str, float] = defaultdict(float)
    for attempt in attempts:
        by_pool[attempt.pool] += attempt.cost(moment)
    return CostSummary(
        attempts=tuple(attempts),
        dollars=sum(by_pool.values()),
        node_seconds=sum(a.node_seconds(moment) for a in attempts),
        preemptions=sum(a.outcome in PREEMPTED_OUTCOMES for a in attempts),
        steps_redone=sum(a.steps_redone for a in attempts),
        checkpoint_seconds=sum(a.checkpoint_seconds for a in attempts),
        dollars_by_pool=dict(by_pool),
    )


def run_cost(hub: Hub, run_id: str) -> CostSummary:
    hub.runs.get(run_id)  # NotFoundError with a hint when there is no such run
    return summarize(JobStore.open(hub).attempts_of_runs([run_id]))


def model_cost(hub: Hub, name: str, version: int | None = None) -> tuple[str | None, CostSummary]:
    """The cost of the run that trained model ``name`` (its lineage's run id)."""
    model = hub.models.get(name, version)
    if model.run_id is None:
        return None, summarize([])
    return model.run_id, summarize(JobStore.open(hub).attempts_of_runs([model.run_id]))


def serving_cost_per_million(price_per_hour: float, requests: float, seconds: float) -> float | None:
    """Dollars per 1M requests of a server on one node at ``price_per_hour`` that answered ``requests`` in
    ``seconds`` (its node-hours over its request count); None when it answered none."""
    if requests <= 0 or seconds <= 0:
        return None
    return price_per_hour * seconds / 3600 / requests * 1_000_000
