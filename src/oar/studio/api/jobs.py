"""/api/v1/jobs: the queue, one job's attempts (placements), events and cost, its log tail; cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from oar.jobs.entities import Attempt, Job
from oar.jobs.ledger import CostSummary
from oar.jobs.store import now
from oar.studio.api.common import ERRORS, Caller, Limit, Offset, PageOut, Studio, Timestamp, page_out
from oar.studio.services.jobs import LOG_LINES, MAX_LOG_LINES, QueuedJob

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERRORS)


class JobSummary(BaseModel):
    id: str
    name: str
    owner: str
    state: str
    reason: str
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
    cancel_requested: bool
    created_at: Timestamp
    updated_at: Timestamp
    finished_at: Timestamp | None
    dollars: float | None = None


class EventOut(BaseModel):
    at: Timestamp
    state: str
    reason: str


class AttemptOut(BaseModel):
    id: str
    number: int
    state: str
    outcome: str
    pool: str
    nodes: list[str]
    workers: int
    cpus: int
    price_per_hour: float
    exit_code: int | None
    start_step: int
    last_step: int
    checkpoint_step: int
    steps_redone: int
    checkpoint_seconds: float
    started_at: Timestamp
    ended_at: Timestamp | None
    seconds: float
    dollars: float


class CostOut(BaseModel):
    dollars: float
    dollars_by_pool: dict[str, float]
    node_seconds: float
    preemptions: int
    steps_redone: int
    wasted_dollars: float
    checkpoint_seconds: float


class JobOut(JobSummary):
    deadline: Timestamp | None
    attempts: list[AttemptOut]
    events: list[EventOut]
    cost: CostOut


class LogOut(BaseModel):
    job_id: str
    lines: int
    log: str


def job_summary(job: Job, dollars: float | None = None) -> JobSummary:
    fields = {name: getattr(job, name) for name in JobSummary.model_fields if name not in ("owner", "dollars")}
    return JobSummary(**fields, owner=job.user, dollars=dollars)


def attempt_out(a: Attempt, moment: datetime) -> AttemptOut:
    """``seconds`` and ``dollars`` of an attempt still running count up to ``moment``, as the ledger's do."""
    fields = {name: getattr(a, name) for name in AttemptOut.model_fields if name not in ("nodes", "seconds", "dollars")}
    return AttemptOut(**fields, nodes=list(a.nodes), seconds=a.seconds(moment), dollars=a.cost(moment))


def cost_out(c: CostSummary) -> CostOut:
    return CostOut(
        dollars=c.dollars,
        dollars_by_pool=c.dollars_by_pool,
        node_seconds=c.node_seconds,
        preemptions=c.preemptions,
        steps_redone=c.steps_redone,
        wasted_dollars=c.wasted_dollars,
        checkpoint_seconds=c.checkpoint_seconds,
    )


def _queued(item: QueuedJob) -> JobSummary:
    return job_summary(item.job, item.cost.dollars)


@router.get("", response_model=PageOut[JobSummary])
def list_jobs(
    studio: Studio,
    who: Caller,
    state: str | None = Query(None, max_length=20),
    owner: str | None = Query(None, max_length=100),
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The queue, newest first, with what each job's attempts cost so far."""
    return page_out(studio.jobs.search(who, state=state, owner=owner, limit=limit, offset=offset), _queued)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, studio: Studio, who: Caller) -> JobOut:
    """A job with its attempts (pool, nodes, workers, steps, outcome), its events and its cost."""
    detail, moment = studio.jobs.get(who, job_id), now()
    return JobOut(
        **job_summary(detail.job, detail.cost.dollars).model_dump(),
        deadline=detail.job.deadline,
        attempts=[attempt_out(a, moment) for a in detail.attempts],
        events=[EventOut(at=e.at, state=e.state, reason=e.reason) for e in detail.job.events],
        cost=cost_out(detail.cost),
    )


@router.get("/{job_id}/logs", response_model=LogOut)
def job_logs(job_id: str, studio: Studio, who: Caller, lines: int = Query(LOG_LINES, ge=1, le=MAX_LOG_LINES)) -> LogOut:
    """The last ``lines`` lines of the job's log: every attempt's output, each after a header line."""
    job, text = studio.jobs.logs(who, job_id, lines)
    return LogOut(job_id=job.id, lines=lines, log=text)


@router.post("/{job_id}/cancel", response_model=JobSummary)
def cancel_job(job_id: str, studio: Studio, who: Caller) -> JobSummary:
    """A waiting job is cancelled at once; a running one checkpoints and stops (``cancel_requested``)."""
    return job_summary(studio.jobs.cancel(who, job_id))
