"""Jobs for the API and the pages: the queue, one job's attempts (its placements), events, cost and log.

Everything is read through the jobs layer (``JobStore``, the ledger's ``summarize``, the scheduler's log
helpers) and cancelling goes through ``oar.jobs.service.cancel``, as ``oar jobs`` does. A job's owner is
the user it was submitted for (``resources.user``): every signed-in user sees the queue, members cancel
their own jobs, admins any; viewers only look.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from oar._core.errors import ConflictError, InvalidInputError, NotFoundError, OarError
from oar.hub import Hub, Page, Run
from oar.hub.catalog import check_page
from oar.jobs import service as job_service
from oar.jobs.entities import TERMINAL, TRANSITIONS, Attempt, Job
from oar.jobs.ledger import CostSummary, summarize
from oar.jobs.scheduler import log_path, log_tail
from oar.jobs.store import JobStore
from oar.studio.services.access import Principal, require_creator, require_owner, require_signed_in

STATES = (*TRANSITIONS, *sorted(TERMINAL))  # queued, placed, running, preempted, requeued, then the final ones
LOG_LINES = 200
MAX_LOG_LINES = 5000


@dataclass(frozen=True)
class QueuedJob:
    """A row of the queue: the job and what its attempts cost so far."""

    job: Job
    cost: CostSummary


@dataclass(frozen=True)
class JobDetail:
    job: Job
    cost: CostSummary  # its attempts, in order, are ``cost.attempts``
    run: Run | None  # the run the job trains, when the hub still has it

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return self.cost.attempts


class JobService:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.store = JobStore.open(hub)

    def search(
        self,
        who: Principal | None,
        *,
        state: str | None = None,
        owner: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """The queue, newest first; each item a :class:`QueuedJob`."""
        require_signed_in(who)
        check_page(limit, offset)
        if state and state not in STATES:
            raise InvalidInputError(f"unknown job state '{state}'; states: {', '.join(STATES)}")
        jobs, total = self.store.page(states=[state] if state else None, user=owner or None, limit=limit, offset=offset)
        by_job: dict[str, list[Attempt]] = defaultdict(list)
        for attempt in self.store.attempts_of_jobs([j.id for j in jobs]):
            by_job[attempt.job_id].append(attempt)
        return Page([QueuedJob(j, summarize(by_job[j.id])) for j in jobs], total, limit, offset)

    def get(self, who: Principal | None, job_id: str) -> JobDetail:
        require_signed_in(who)
        job = self.store.get(job_id)
        try:
            run = self.hub.runs.get(job.run_id)
        except NotFoundError:
            run = None
        return JobDetail(job, summarize(self.store.attempts(job.id)), run)

    def logs(self, who: Principal | None, job_id: str, lines: int = LOG_LINES) -> tuple[Job, str]:
        """The last ``lines`` lines of the job's log (every attempt's output, each after a header line)."""
        require_signed_in(who)
        if not 1 <= lines <= MAX_LOG_LINES:
            raise InvalidInputError(f"lines must be 1-{MAX_LOG_LINES}")
        job = self.store.get(job_id)
        return job, log_tail(log_path(self.hub, job.id), lines)

    def can_cancel(self, who: Principal | None, job: Job) -> bool:
        if who is None or job.done:
            return False
        return who.is_admin or (who.can_create and who.username == job.user)

    def cancel(self, who: Principal | None, job_id: str) -> Job:
        """A waiting job is cancelled at once; a running one is asked to checkpoint and stop."""
        require_creator(who, "cancel a job")
        job = self.store.get(job_id)
        require_owner(who, job.user, f"job {job.id}")
        if job.done:
            raise ConflictError(f"job {job.id} already {job.state}")
        try:
            return job_service.cancel(job.id, self.hub)
        except OarError as exc:
            if type(exc) is OarError:  # it ended in the meantime
                raise ConflictError(str(exc)) from None
            raise
