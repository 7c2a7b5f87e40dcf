"""Plain records of the job queue, safe to keep after the database session is closed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

QUEUED, PLACED, RUNNING, PREEMPTED, REQUEUED = "queued", "placed", "running", "preempted", "requeued"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
WAITING = frozenset({QUEUED, REQUEUED})  # states the placer picks from
ACTIVE = frozenset({PLACED, RUNNING})  # states with a live attempt

# Every state change the queue allows; anything else is a bug and raises.
TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({PLACED, CANCELLED, FAILED}),
    PLACED: frozenset({RUNNING, REQUEUED, FAILED, CANCELLED}),
    RUNNING: frozenset({PREEMPTED, REQUEUED, SUCCEEDED, FAILED, CANCELLED}),
    PREEMPTED: frozenset({REQUEUED, FAILED, CANCELLED}),
    REQUEUED: frozenset({PLACED, CANCELLED, FAILED}),
}


@dataclass(frozen=True)
class JobEvent:
    at: datetime
    state: str
    reason: str


@dataclass(frozen=True)
class Job:
    id: str
    name: str
    user: str
    state: str
    version: int
    priority: int
    pool: str
    current_pool: str
    workers_min: int
    workers_max: int
    cpus: int
    retries: int
    failures: int
    preemptions: int
    run_id: str
    spec: dict[str, Any]
    reason: str
    cluster: str
    cancel_requested: bool
    deadline: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    events: tuple[JobEvent, ...] = field(default_factory=tuple)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True)
class Attempt:
    id: str
    job_id: str
    number: int
    state: str
    pool: str
    nodes: tuple[str, ...]
    workers: int
    cpus: int
    node_share: float
    price_per_hour: float
    handle: dict[str, Any]
    outcome: str
    exit_code: int | None
    start_step: int
    last_step: int
    checkpoint_step: int
    steps_redone: int
    checkpoint_seconds: float
    started_at: datetime
    ended_at: datetime | None

    def seconds(self, now: datetime | None = None) -> float:
        end = self.ended_at or now or self.started_at
        return max(0.0, (_aware(end) - _aware(self.started_at)).total_seconds())

    def node_seconds(self, now: datetime | None = None) -> float:
        return self.seconds(now) * self.node_share

    def cost(self, now: datetime | None = None) -> float:
        """Dollars: the attempt's node share x its time x the pool's price (spot discount applied)."""
        return self.seconds(now) / 3600.0 * self.price_per_hour


@dataclass(frozen=True)
class Node:
    id: str
    pool: str
    cpus: int
    state: str
    created_at: datetime
    notice_at: datetime | None
    gone_at: datetime | None


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC."""
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
