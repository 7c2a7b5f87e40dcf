"""Tables of the job queue, on the hub's declarative ``Base``; the hub's migration 0003 creates them.

Rows never leave ``oar.jobs.store``: it converts them to the frozen records of ``oar.jobs.entities``.
``version`` on a job is bumped by every state change; a change is an ``UPDATE ... WHERE state = old``,
so two schedulers (or one restarted mid-step) can never both move a job, and an attempt is created once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from oar.hub.orm import Base


def _now() -> datetime:
    return datetime.now(UTC)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    user: Mapped[str] = mapped_column(String(100), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    pool: Mapped[str] = mapped_column(String(60))  # the pool the job asked for
    current_pool: Mapped[str] = mapped_column(String(60))  # where the next attempt goes (policy may move it)
    workers_min: Mapped[int] = mapped_column(Integer, default=1)
    workers_max: Mapped[int] = mapped_column(Integer, default=1)
    cpus: Mapped[int] = mapped_column(Integer, default=1)  # per worker
    retries: Mapped[int] = mapped_column(Integer, default=0)  # allowed re-runs after a crash
    failures: Mapped[int] = mapped_column(Integer, default=0)
    preemptions: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[str] = mapped_column(String(40), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # resources and policy as submitted
    reason: Mapped[str] = mapped_column(Text, default="")
    cluster: Mapped[str] = mapped_column(String(200), default="local")  # which scheduler's executor runs it
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobEventRow(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")


class AttemptRow(Base):
    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("job_id", "number"),)

    id: Mapped[str] = mapped_column(String(60), primary_key=True)  # "<job>-<number>"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))  # starting | running | ended
    pool: Mapped[str] = mapped_column(String(60))
    nodes: Mapped[list[str]] = mapped_column(JSON, default=list)
    workers: Mapped[int] = mapped_column(Integer, default=1)
    cpus: Mapped[int] = mapped_column(Integer, default=1)
    node_share: Mapped[float] = mapped_column(Float, default=1.0)  # nodes held: workers x cpus / node cpus
    price_per_hour: Mapped[float] = mapped_column(Float, default=0.0)  # what this attempt's share costs
    handle: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # executor-specific (pid, actor names)
    outcome: Mapped[str] = mapped_column(String(20), default="")  # succeeded | preempted | killed | failed | ...
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    start_step: Mapped[int] = mapped_column(Integer, default=0)
    last_step: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint_step: Mapped[int] = mapped_column(Integer, default=0)
    steps_redone: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class NodeRow(Base):
    """A node of a locally managed pool (the local executor's slots); Ray keeps its own inventory."""

    __tablename__ = "job_nodes"

    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    pool: Mapped[str] = mapped_column(String(60), index=True)
    cpus: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))  # up | notice | gone
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    notice_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    gone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
