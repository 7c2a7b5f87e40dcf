"""Where a job's next attempt goes: its own pool, unless spot has become a bad bet for it.

Three reasons to move a job from spot to the on-demand pool, each written into the job's history:

- it was preempted ``max_preemptions`` times (a job that keeps losing its node wastes more than it saves);
- its restarts cost more than spot saves: each restart wastes the attempt's start-up (process, imports,
  data, model, checkpoint load: measured per attempt from its history) and the steps redone after a hard
  loss; at the rate the job has been preempted, the share of its spot time so wasted is above the spot
  discount, so a useful second on spot costs more than on on-demand (short jobs with slow start-ups);
- its deadline is near: the time left is less than the work left (measured speed x steps to go) plus
  one preemption's loss (the pool's notice window) plus a margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from oar.jobs.entities import Job
from oar.jobs.pools import Pool, Pools

DEADLINE_MARGIN = 1.5  # the work left is multiplied by this: slack for a restart and a slower node
MIN_PREEMPTIONS_FOR_RATE = 3  # one or two early preemptions say little about the rate


@dataclass(frozen=True)
class Progress:
    """What the attempts so far tell about a run's speed."""

    step: int = 0
    total_steps: int | None = None
    seconds_per_step: float | None = None
    startup_s: float | None = None  # mean seconds from an attempt's start to its first step
    spot_seconds: float = 0.0  # wall seconds of the job's attempts on spot so far
    redone_seconds: float = 0.0  # seconds of steps trained again after hard losses on spot

    def seconds_left(self) -> float | None:
        if self.total_steps is None or self.seconds_per_step is None:
            return None
        return max(0, self.total_steps - self.step) * self.seconds_per_step


def next_pool(job: Job, pools: Pools, progress: Progress, now: datetime) -> tuple[str, str | None]:
    """(pool, why it changed or None)."""
    pool = pools.get(job.current_pool)
    if not pool.spot:
        return job.current_pool, None
    limit = job.spec.get("max_preemptions")
    if limit is not None and job.preemptions >= int(limit):
        return pools.on_demand, f"moved to {pools.on_demand}: preempted {job.preemptions} times (limit {limit})"
    if job.spec.get("restart_waste_policy", True) and (why := restarts_cost_more(job, pool, progress)):
        return pools.on_demand, f"moved to {pools.on_demand}: {why}"
    if job.deadline is not None:
        deadline = job.deadline if job.deadline.tzinfo else job.deadline.replace(tzinfo=now.tzinfo)
        left = (deadline - now).total_seconds()
        work = progress.seconds_left()
        if work is not None and left < work * DEADLINE_MARGIN + pool.notice_s:
            return pools.on_demand, (
                f"moved to {pools.on_demand}: deadline in {left:.0f} s, about {work:.0f} s of work left "
                f"(x{DEADLINE_MARGIN} + {pool.notice_s:.0f} s notice does not fit on spot)"
            )
        if work is None and left < pool.notice_s:
            return pools.on_demand, f"moved to {pools.on_demand}: deadline in {left:.0f} s, shorter than a notice"
    return job.current_pool, None


def restart_waste(preemptions: int, progress: Progress) -> float | None:
    """The share of spot wall time lost to restarts: rate x (start-up + redone work), or None (no evidence)."""
    if preemptions < MIN_PREEMPTIONS_FOR_RATE or progress.startup_s is None or progress.spot_seconds <= 0:
        return None
    per_restart = progress.startup_s + progress.redone_seconds / preemptions
    return preemptions / progress.spot_seconds * per_restart


def restarts_cost_more(job: Job, pool: Pool, progress: Progress) -> str | None:
    """Why spot costs this job more than on-demand, or None.

    A useful second on spot costs ``(1 - discount) / (1 - waste)`` of on-demand, so spot loses as soon as
    ``waste`` (the share of spot time lost to restarts) is above the discount.
    """
    waste = restart_waste(job.preemptions, progress)
    if waste is None or waste <= pool.spot_discount:
        return None
    per_restart = (progress.startup_s or 0.0) + progress.redone_seconds / job.preemptions
    return (
        f"restarts waste {waste:.0%} of its spot time ({job.preemptions} preemptions in "
        f"{progress.spot_seconds:.0f} s, {per_restart:.1f} s lost each: start-up {progress.startup_s:.1f} s), "
        f"more than the {pool.spot_discount:.0%} spot discount"
    )
