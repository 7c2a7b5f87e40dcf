"""Where a job's next attempt goes: its own pool, unless spot has become a bad bet for it.

Two reasons to move a job from spot to the on-demand pool, each written into the job's history:

- it was preempted ``max_preemptions`` times (a job that keeps losing its node wastes more than it saves);
- its deadline is near: the time left is less than the work left (measured speed x steps to go) plus
  one preemption's loss (the pool's notice window) plus a margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from oar.jobs.entities import Job
from oar.jobs.pools import Pools

DEADLINE_MARGIN = 1.5  # the work left is multiplied by this: slack for a restart and a slower node


@dataclass(frozen=True)
class Progress:
    """What the attempts so far tell about a run's speed."""

    step: int = 0
    total_steps: int | None = None
    seconds_per_step: float | None = None

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
