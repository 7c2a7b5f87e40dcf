"""The scheduler: one loop that places waiting jobs, watches attempts and handles preemptions.

Every decision is a state change in the database first (``JobStore.place`` claims a job and records its
attempt in one transaction) and an action second, and every action can be found again from what was
recorded (the attempt's handle and folder). So the loop can be stopped or ``kill -9``-ed at any point:
the next scheduler ``recover``s attempts it finds half-started and adopts those still running, and no
job is lost or started twice.

One tick: preemption notices → attempts that ended → cancellations → autoscaling → placement → growth
of elastic jobs. ``python -m oar.jobs.scheduler`` runs the loop; ``oar jobs submit`` starts one in the
background when none holds the lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from oar._core.errors import NotFoundError
from oar.hub import Hub
from oar.jobs.entities import ACTIVE, PLACED, PREEMPTED, REQUEUED, RUNNING, Attempt, Job
from oar.jobs.executors.base import Executor, Inventory, Launch, NodeUnavailable, NodeView
from oar.jobs.kinds import worker_module
from oar.jobs.policy import Progress, next_pool
from oar.jobs.pools import Pools
from oar.jobs.preemption import NoPreemptions, PreemptionSource
from oar.jobs.progress import EXIT_PREEMPTED, read_progress
from oar.jobs.store import JobStore, now

log = logging.getLogger("oar.jobs")
STOPPED_BY_SIGTERM = frozenset({"preempt", "resize", "cancel"})
LIVE = ("starting", "running")
NEVER_RAN = frozenset({"abandoned", "start-failed", "unplaced"})  # outcomes of attempts that trained nothing
# How a process ended by SIGTERM is reported: 143 by a local attempt's parent, -15 by a Ray actor's Popen
_SIGTERM_DEATHS = frozenset({128 + 15, -15})
_GONE_MEMORY_S = 300.0  # how long a node the scheduler saw go stays out of placement while a cluster still lists it


@dataclass
class SchedulerConfig:
    tick_s: float = 0.2
    quotas: dict[str, int] = field(default_factory=dict)  # user → most jobs placed or running at once
    default_quota: int | None = None
    autoscale: bool = True
    idle_node_s: float = 30.0  # an idle node above the pool's min_nodes is released after this
    grow_after_s: float = 5.0  # an elastic job runs this long before it is stopped to grow
    log_tail_lines: int = 15


def job_dir(hub: Hub, job_id: str) -> Path:
    return hub.home / "jobs" / job_id


def log_path(hub: Hub, job_id: str) -> Path:
    return job_dir(hub, job_id) / "log.txt"


def log_tail(path: Path, lines: int, attempt: int | None = None) -> str:
    """The last ``lines`` lines of the job's log; with ``attempt``, only of what that attempt wrote."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    rows = text.splitlines()
    if attempt is not None:
        header = f"--- attempt {attempt} "
        starts = [i for i, row in enumerate(rows) if row.startswith(header)]
        rows = rows[starts[-1] + 1 :] if starts else rows
    rows = [row for row in rows if row.strip()]
    return "\n".join(rows[-lines:])


def describe_exit(code: int | None) -> str:
    """``failed with exit code 1``, or for a process ended by a signal (its parent records 128 + N) the
    signal's name and likely cause: ``was killed by signal 9 (SIGKILL, e.g. out of memory)``."""
    if code is None:
        return "failed with no exit code"
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            return f"failed with exit code {code}"
        cause = ", e.g. out of memory" if name == "SIGKILL" else ""
        return f"was killed by signal {code - 128} ({name}{cause})"
    return f"failed with exit code {code}"


class Scheduler:
    def __init__(
        self,
        hub: Hub,
        pools: Pools,
        executor: Executor,
        inventory: Inventory,
        preemptions: PreemptionSource | None = None,
        cluster: str = "local",
        config: SchedulerConfig | None = None,
        spans_nodes: bool = False,
        after_write: Callable[[str, str], None] | None = None,
    ) -> None:
        """``after_write`` is called with a name and the job's id after each database write of the placement
        and settling sequences (placed, started, attempt-running, job-running, attempt-ended, preempted);
        tests raise from it to stop a scheduler between two writes as a ``kill -9`` would."""
        self.hub, self.pools, self.executor, self.inventory = hub, pools, executor, inventory
        self.store = JobStore.open(hub)
        self.preemptions = preemptions or NoPreemptions()
        self.cluster, self.config, self.spans_nodes = cluster, config or SchedulerConfig(), spans_nodes
        self._after_write = after_write or (lambda point, job_id: None)
        self._doomed: dict[str, float] = {}  # node → monotonic time of its loss
        self._gone: dict[str, float] = {}  # node → monotonic time it was seen go (a cluster may list it a while)
        self._idle_since: dict[str, float] = {}
        self._wanted: Counter[str] = Counter()
        self._reconciling = False
        self.recover()

    # --- restart -----------------------------------------------------------------------------------

    def recover(self) -> None:
        """Bring every job of this cluster and its attempts back into agreement after a restart.

        A previous scheduler may have stopped between any two of its writes; each (job state, attempt
        state) pair it can leave is settled by ``_reconcile``: half-started attempts are started or given
        up once, a job left ``placed`` under a running attempt is moved on, an attempt that ended while
        nobody watched has its outcome applied, a job left ``preempted`` is requeued.
        """
        jobs = [j for j in self.store.list(states=ACTIVE | {PREEMPTED}) if j.cluster == self.cluster]
        for attempt in self.store.attempts(states=LIVE):
            job = self.store.get(attempt.job_id)
            if job.cluster == self.cluster and job.state not in ACTIVE and job.state != PREEMPTED:
                self._abandon(attempt, f"its job is {job.state}")
        for job in jobs:
            self._reconcile(job.id, restart=True)
        for node in self.store.nodes(states=("notice",)):
            pool = self.pools.pools.get(node.pool)
            waited = (now() - _aware(node.notice_at or now())).total_seconds()
            self._doomed[node.id] = time.monotonic() + max(0.0, (pool.notice_s if pool else 0.0) - waited)

    def _reconcile(self, job_id: str, restart: bool = False) -> None:
        """Make job ``job_id`` agree with its attempts, whatever write a stopped scheduler did last."""
        job = self.store.get(job_id)
        attempts = self.store.attempts(job.id)
        live = [a for a in attempts if a.state in LIVE]
        if job.state == PREEMPTED:
            self._requeue(job)
            return
        if job.state not in ACTIVE:
            for attempt in live:
                self._abandon(attempt, f"its job is {job.state}")
            return
        if not live:
            self._settle_ended(job, attempts[-1] if attempts else None)
            return
        for extra in live[:-1]:  # one live attempt per job; an older one is a leftover
            self._abandon(extra, f"attempt {live[-1].number} replaced it")
        attempt = live[-1]
        if attempt.state == "starting":
            if restart:
                self._recover_starting(job, attempt)
        elif job.state == PLACED:
            self._move(job, {PLACED}, RUNNING, f"attempt {attempt.number} adopted after a restart")

    def _recover_starting(self, job: Job, attempt: Attempt) -> None:
        handle = self.executor.recover(self._launch(job, attempt), attempt.handle)
        if handle is None:
            self.store.update_attempt(attempt.id, state="ended", outcome="abandoned", ended_at=now())
            self._move(job, {PLACED}, REQUEUED, "the scheduler stopped before the attempt started")
            return
        self.store.update_attempt(attempt.id, state="running", handle=handle)
        self._move(job, {PLACED}, RUNNING, f"attempt {attempt.number} adopted after a restart")

    def _settle_ended(self, job: Job, last: Attempt | None) -> None:
        """An active job whose attempts all ended: apply the last outcome the previous scheduler recorded."""
        if last is None:
            self._move(job, {job.state}, REQUEUED, "no attempt was recorded; placed again")
            return
        if job.state == PLACED and last.outcome not in NEVER_RAN:
            moved = self._move(job, {PLACED}, RUNNING, f"attempt {last.number} ran while no scheduler watched")
            if moved is None:
                return
            job = moved
        self._after(job, last, last.outcome, last.exit_code, last.last_step, last.checkpoint_step)

    def _abandon(self, attempt: Attempt, why: str) -> None:
        """An attempt that must not go on: stop it hard and close its row."""
        log.warning("attempt %s stopped: %s", attempt.id, why)
        if attempt.handle:
            self.executor.kill(attempt.handle)
        self.store.update_attempt(attempt.id, state="ended", outcome="abandoned", ended_at=now())

    def _move(self, job: Job, expected: set[str], to: str, reason: str, **changes: Any) -> Job | None:
        """A compare-and-set on the job's state that is never silently lost: a miss is logged and the job
        is reconciled with its attempts (another write got there first, or a previous scheduler stopped)."""
        moved = self.store.transition(job.id, expected, to, reason, **changes)
        if moved is not None:
            self._sync_run(moved)
            return moved
        actual = self.store.get(job.id).state
        log.warning("job %s: expected %s for → %s, found %s; reconciling", job.id, sorted(expected), to, actual)
        if not self._reconciling:
            self._reconciling = True
            try:
                self._reconcile(job.id)
            finally:
                self._reconciling = False
        return None

    def _sync_run(self, job: Job) -> None:
        """The run follows its job: a trainer killed without a word leaves its run ``running`` otherwise."""
        try:
            run = self.hub.runs.get(job.run_id)
        except NotFoundError:  # a job of a run removed from the hub: nothing to keep in step
            return
        status = None
        if job.state == "failed" and run.status != "failed":
            status = "failed"
        elif job.state == "cancelled" and run.status not in ("finished", "cancelled"):
            status = "cancelled"
        elif job.state in (PREEMPTED, REQUEUED) and run.status == "running":
            status = "preempted"  # stopped before it could say so; the next attempt resumes it
        if status is not None:
            metrics = {"error": job.reason.splitlines()[0]} if status == "failed" else None
            self.hub.runs.update(job.run_id, status=status, metrics=metrics)

    # --- the loop ----------------------------------------------------------------------------------

    def tick(self) -> None:
        self._notices()
        self._poll()
        self._cancels()
        if self.config.autoscale and hasattr(self.inventory, "add"):
            self._autoscale()
        self._place()
        self._grow()

    def busy(self) -> bool:
        return bool(self._active()) or any(j.cluster == self.cluster for j in self.store.waiting())

    def run(self, until_idle_s: float | None = None, stop: Any = None) -> None:
        """Tick until ``stop`` (an Event) is set, or there was nothing to do for ``until_idle_s``."""
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            self.tick()
            if self.busy():
                idle_since = time.monotonic()
            elif until_idle_s is not None and time.monotonic() - idle_since > until_idle_s:
                return
            time.sleep(self.config.tick_s)

    # --- preemption --------------------------------------------------------------------------------

    def _notices(self) -> None:
        nodes = [n for n in self.inventory.nodes() if n.id not in self._gone]
        for notice in self.preemptions.poll([n for n in nodes if n.id not in self._doomed]):
            if notice.node_id in self._doomed:
                continue
            self._doomed[notice.node_id] = time.monotonic() + notice.notice_s
            if hasattr(self.inventory, "add"):
                self.store.set_node_state(notice.node_id, "notice")
            for attempt in self._on_node(notice.node_id):
                if notice.notice_s > 0:
                    self._stop(
                        attempt, "preempt", f"{notice.reason}: node {notice.node_id}, {notice.notice_s:.1f} s notice"
                    )
        for node_id, deadline in list(self._doomed.items()):
            if time.monotonic() >= deadline:
                for attempt in self._on_node(node_id):
                    status = self.executor.poll(attempt.handle) if attempt.state == "running" else None
                    if status is not None and not status.running:  # it made it out in time
                        self._finish(attempt, status.exit_code)
                    else:
                        self._stop(attempt, "kill", f"node {node_id} lost")
                del self._doomed[node_id]
                self._gone[node_id] = time.monotonic()
                self.inventory.remove(node_id)

    def _stop(self, attempt: Attempt, why: str, reason: str) -> None:
        """Ask an attempt to stop (``why``: preempt | resize | cancel via SIGTERM; kill: at once)."""
        if attempt.handle.get("stop") in ("kill",) or (attempt.handle.get("stop") and why != "kill"):
            return
        self.store.update_attempt(attempt.id, handle={**attempt.handle, "stop": why})
        self.store.note(attempt.job_id, reason)
        if why == "kill":
            self.executor.kill(attempt.handle)
        else:
            self.executor.terminate(attempt.handle)

    # --- attempts that ended -----------------------------------------------------------------------

    def _poll(self) -> None:
        for attempt in self._active(states=("running",)):
            status = self.executor.poll(attempt.handle)
            if not status.running:
                self._finish(attempt, status.exit_code)

    def _finish(self, attempt: Attempt, code: int | None) -> None:
        job = self.store.get(attempt.job_id)
        progress = read_progress(job_dir(self.hub, job.id) / f"attempt-{attempt.number}" / "progress.json")
        stop = attempt.handle.get("stop")
        trained = "start_step" in progress  # absent: it ended in start-up, before training began
        start = int(progress["start_step"]) if trained else self._resume_point(job.id, attempt.number)
        last, checkpoint = int(progress.get("step", start)), int(progress.get("checkpoint_step", start))
        if code == 0:
            outcome = "succeeded"
        elif code is None:
            outcome = "killed" if stop == "kill" else "lost"
        elif code == EXIT_PREEMPTED or (stop in STOPPED_BY_SIGTERM and code in _SIGTERM_DEATHS):
            # SIGTERM outside training's handler (still starting, or already finishing): nothing new to save
            outcome = {"resize": "resized", "cancel": "cancelled"}.get(stop or "", "preempted")
        else:
            outcome = "cancelled" if stop == "cancel" else "failed"
        self.store.update_attempt(
            attempt.id,
            state="ended",
            outcome=outcome,
            exit_code=code,
            ended_at=now(),
            start_step=start,
            last_step=last,
            checkpoint_step=checkpoint,
            steps_redone=max(0, last - checkpoint) if outcome in ("killed", "lost") else 0,
            checkpoint_seconds=float(progress.get("checkpoint_seconds", 0.0)),
        )
        self._after_write("attempt-ended", job.id)
        if trained:
            self._settle_redone(job.id, attempt.number, start)
        self._after(job, attempt, outcome, code, last, checkpoint)

    def _resume_point(self, job_id: str, number: int) -> int:
        """The checkpoint an attempt that never reached training would have resumed from."""
        earlier = [a.checkpoint_step for a in self.store.attempts(job_id) if a.number < number and a.state == "ended"]
        return max(earlier, default=0)

    def _settle_redone(self, job_id: str, number: int, resumed_from: int) -> None:
        """The work a killed attempt lost is what the next one trained again: its last step - the resume step.

        "The previous one" is the newest earlier attempt that trained: a replacement that died in start-up
        resumed from nothing and trained nothing, so it neither settles nor hides the killed one before it.
        """
        earlier = [a for a in self.store.attempts(job_id) if a.number < number and a.state == "ended"]
        for previous in reversed(earlier):
            if previous.outcome in NEVER_RAN or previous.last_step <= previous.start_step:
                continue
            if previous.outcome in ("killed", "lost"):
                lost = max(0, previous.last_step - resumed_from)
                self.store.update_attempt(previous.id, steps_redone=lost, checkpoint_step=resumed_from)
            return

    def _after(self, job: Job, attempt: Attempt, outcome: str, code: int | None, last: int, checkpoint: int) -> None:
        where = f"attempt {attempt.number} on {', '.join(sorted(set(attempt.nodes)))}"
        if outcome == "succeeded":
            self._move(job, {RUNNING}, "succeeded", f"{where} finished at step {last}")
        elif outcome == "cancelled" or job.cancel_requested:
            self._move(job, {RUNNING, PLACED}, "cancelled", f"cancelled; {where} stopped at step {last}")
        elif outcome == "resized":
            self._move(job, {RUNNING}, REQUEUED, f"{where} stopped at checkpoint step {last} to resize")
        elif outcome in ("abandoned", "unplaced"):
            self._move(job, {PLACED, RUNNING}, REQUEUED, f"{where} never started; placed again")
        elif outcome in ("preempted", "killed", "lost"):
            lost = f", {last - checkpoint} steps since checkpoint {checkpoint} lost" if outcome != "preempted" else ""
            how = {"preempted": _preempted_how(code), "killed": "killed with its node", "lost": "vanished"}
            moved = self._move(
                job,
                {RUNNING},
                PREEMPTED,
                f"{where} {how[outcome]}" + (f" at step {last}" if code not in _SIGTERM_DEATHS else "") + lost,
                preemptions=job.preemptions + 1,
            )
            if moved is not None:
                self._after_write("preempted", job.id)
                self._requeue(moved)
        else:
            self._failed(job, where, code, attempt.number)

    def _requeue(self, job: Job) -> None:
        pool, why = next_pool(job, self.pools, self._progress(job), now())
        reason = why or f"requeued on {pool}; resumes from its last checkpoint"
        self._move(job, {PREEMPTED}, REQUEUED, reason, current_pool=pool)

    def _failed(self, job: Job, where: str, code: int | None, number: int | None = None) -> None:
        failures = job.failures + 1
        how = describe_exit(code)
        if failures <= job.retries:
            reason = f"{where} {how}; retry {failures} of {job.retries}"
            self._move(job, {RUNNING, PLACED}, REQUEUED, reason, failures=failures)
            return
        tail = log_tail(log_path(self.hub, job.id), self.config.log_tail_lines, number)
        reason = f"{where} {how}" + (f"; log tail:\n{tail}" if tail else "; no output")
        self._move(job, {RUNNING, PLACED}, "failed", reason, failures=failures)

    def _cancels(self) -> None:
        cancelling = {j.id for j in self.store.list(states=ACTIVE) if j.cancel_requested}
        for attempt in self._active(states=("running",)):
            if attempt.job_id in cancelling:
                self._stop(attempt, "cancel", "cancel requested: stopping at a checkpoint")

    # --- capacity ------------------------------------------------------------------------------------

    def _free(self) -> dict[str, tuple[NodeView, int]]:
        used: Counter[str] = Counter()
        for attempt in self._active():
            for node in attempt.nodes:
                used[node] += attempt.cpus
        listed = self.inventory.nodes()
        ids = {n.id for n in listed}
        for node_id, since in list(self._gone.items()):  # forget it once the cluster stops listing it
            if node_id not in ids or time.monotonic() - since > _GONE_MEMORY_S:
                del self._gone[node_id]
        nodes = [n for n in listed if n.id not in self._doomed and n.id not in self._gone]
        return {n.id: (n, n.cpus - used[n.id]) for n in nodes}

    def _choose(self, job: Job, pool: str, free: dict[str, tuple[NodeView, int]]) -> list[str] | None:
        """Node per worker: on one node (local), or spread over nodes; as many as fit up to the max."""
        candidates = sorted(
            ((node, room) for node, room in free.values() if node.pool == pool and room >= job.cpus),
            key=lambda item: (-item[1], item[0].id),
        )
        if not self.spans_nodes:
            for node, room in candidates:
                workers = min(job.workers_max, room // job.cpus)
                if workers >= job.workers_min:
                    return [node.id] * workers
            return None
        chosen: list[str] = []
        for node, room in candidates:
            take = min(job.workers_max - len(chosen), room // job.cpus)
            chosen += [node.id] * take
        return chosen if len(chosen) >= job.workers_min else None

    def _autoscale(self) -> None:
        """Keep each local pool between min and max nodes: replace lost nodes, add for waiting jobs, shed idle."""
        free = self._free()
        for name, pool in self.pools.pools.items():
            up = [node for node, _ in free.values() if node.pool == name]
            missing = max(pool.min_nodes - len(up), min(self._wanted[name], pool.max_nodes - len(up)))
            for _ in range(max(0, missing)):
                self.inventory.add(name, pool.node_cpus)  # type: ignore[attr-defined]
            idle = [node for node, room in free.values() if node.pool == name and room == node.cpus]
            for node in idle:
                self._idle_since.setdefault(node.id, time.monotonic())
            busy = {node.id for node, room in free.values() if room < node.cpus}
            for node_id in busy:
                self._idle_since.pop(node_id, None)
            extra = len(up) - pool.min_nodes
            for node in sorted(idle, key=lambda n: self._idle_since[n.id]):
                if extra <= 0 or self._wanted[name]:
                    break
                if time.monotonic() - self._idle_since[node.id] >= self.config.idle_node_s:
                    self.inventory.remove(node.id)
                    self._idle_since.pop(node.id, None)
                    extra -= 1
        self._wanted.clear()

    # --- placement -----------------------------------------------------------------------------------

    def _place(self) -> None:
        active_by_user = self.store.active_by_user()
        free = self._free()
        for job in self.store.waiting():
            if job.cluster != self.cluster:
                continue
            if job.cancel_requested:
                self._move(job, {job.state}, "cancelled", "cancelled before it was placed")
                continue
            quota = self.config.quotas.get(job.user, self.config.default_quota)
            if quota is not None and active_by_user.get(job.user, 0) >= quota:
                continue
            progress = self._progress(job) if job.deadline is not None else Progress()  # only deadlines need it
            pool, why = next_pool(job, self.pools, progress, now())
            if why:
                self.store.note(job.id, why, current_pool=pool)
                job = replace(job, current_pool=pool)
            nodes = self._choose(job, pool, free)
            if nodes is None:
                self._wanted[pool] += 1
                continue
            self._start(job, pool, nodes)
            for node in nodes:
                view, room = free[node]
                free[node] = (view, room - job.cpus)
            active_by_user[job.user] = active_by_user.get(job.user, 0) + 1

    def _start(self, job: Job, pool_name: str, nodes: list[str]) -> None:
        pool = self.pools.get(pool_name)
        fields = {
            "pool": pool_name,
            "nodes": nodes,
            "workers": len(nodes),
            "cpus": job.cpus,
            "node_share": len(nodes) * min(job.cpus, pool.node_cpus) / pool.node_cpus,
            "price_per_hour": pool.share_price_per_hour(job.cpus) * len(nodes),
        }
        attempt = self.store.place(
            job, fields, f"placed on {pool_name}: {', '.join(sorted(set(nodes)))}, {len(nodes)} worker(s)"
        )
        if attempt is None:
            return
        self._after_write("placed", job.id)
        launch = self._launch(job, attempt)
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        with launch.log.open("a") as out:
            out.write(f"--- attempt {attempt.number} on {pool_name} ({', '.join(nodes)}) at {now().isoformat()} ---\n")
        try:
            handle = self.executor.start(launch)
        except Exception as exc:
            self._start_failed(self.store.get(job.id), attempt, exc)
            return
        self._after_write("started", job.id)
        self.store.update_attempt(attempt.id, state="running", handle=handle)
        self._after_write("attempt-running", job.id)
        self._move(self.store.get(job.id), {PLACED}, RUNNING, f"attempt {attempt.number} started")
        self._after_write("job-running", job.id)

    def _start_failed(self, job: Job, attempt: Attempt, exc: Exception) -> None:
        """On a node that is gone the start could never work: requeue like a preemption, bill nothing.
        Anywhere else the executor failed: count it like a crash."""
        listed = {n.id for n in self.inventory.nodes()}
        gone = sorted({n for n in attempt.nodes if n in self._gone or n not in listed})
        if isinstance(exc, NodeUnavailable):
            gone = sorted(set(gone) | set(exc.nodes))
        if gone:
            log.warning("attempt %s could not start: node(s) %s gone (%s)", attempt.id, ", ".join(gone), exc)
            for node in gone:
                self._gone[node] = time.monotonic()
            # ended when it began: no node time was ever used, so the ledger bills it nothing
            self.store.update_attempt(attempt.id, state="ended", outcome="unplaced", ended_at=attempt.started_at)
            reason = f"attempt {attempt.number} could not start: node {', '.join(gone)} is gone; requeued"
            self._move(job, {PLACED}, REQUEUED, reason)
            return
        log.exception("could not start attempt %s", attempt.id, exc_info=exc)
        self.store.update_attempt(attempt.id, state="ended", outcome="start-failed", ended_at=now())
        self._failed(job, f"attempt {attempt.number} (could not start: {exc})", None)

    def _grow(self) -> None:
        """An elastic job below its max, with room free and nobody waiting for it: stop it to grow."""
        if any(j.cluster == self.cluster for j in self.store.waiting()):
            return
        free = self._free()
        jobs = {j.id: j for j in self.store.list(states=(RUNNING,))}
        for attempt in self._active(states=("running",)):
            job = jobs.get(attempt.job_id)
            if job is None or attempt.workers >= job.workers_max or attempt.handle.get("stop"):
                continue
            if attempt.seconds(now()) < self.config.grow_after_s:
                continue
            mine = {
                node: (view, room + (attempt.cpus * attempt.nodes.count(node))) for node, (view, room) in free.items()
            }
            nodes = self._choose(job, attempt.pool, mine)
            if nodes is not None and len(nodes) > attempt.workers:
                self._stop(attempt, "resize", f"room for {len(nodes)} workers: resizing from {attempt.workers}")
                return

    # --- helpers -------------------------------------------------------------------------------------

    def _active(self, states: tuple[str, ...] = LIVE) -> list[Attempt]:
        mine = {j.id for j in self.store.list(states=ACTIVE) if j.cluster == self.cluster}
        return [a for a in self.store.attempts(states=states) if a.job_id in mine]

    def _on_node(self, node_id: str) -> list[Attempt]:
        return [a for a in self._active() if node_id in a.nodes]

    def _launch(self, job: Job, attempt: Attempt) -> Launch:
        return Launch(
            attempt_id=attempt.id,
            run_id=job.run_id,
            workers=attempt.workers,
            cpus=attempt.cpus,
            pool=attempt.pool,
            nodes=attempt.nodes,
            directory=job_dir(self.hub, job.id) / f"attempt-{attempt.number}",
            log=log_path(self.hub, job.id),
            env={"OAR_HOME": str(self.hub.home)},
            module=worker_module(job.spec),
        )

    def _progress(self, job: Job) -> Progress:
        attempts = [a for a in self.store.attempts(job.id) if a.state == "ended"]
        if not attempts:
            return Progress()
        steps = sum(max(0, a.last_step - a.start_step) for a in attempts)
        seconds = sum(a.seconds() for a in attempts)
        latest = read_progress(job_dir(self.hub, job.id) / f"attempt-{attempts[-1].number}" / "progress.json")
        per_step = seconds / steps if steps else None
        return Progress(
            step=max(a.checkpoint_step for a in attempts),
            total_steps=latest.get("total_steps"),
            seconds_per_step=per_step,
            **restart_history(self.hub, job, attempts, self.pools, per_step),
        )


def restart_history(
    hub: Hub, job: Job, attempts: list[Attempt], pools: Pools, seconds_per_step: float | None
) -> dict[str, Any]:
    """Start-up per attempt (its first step's time - its start, from ``progress.json``) and spot time and waste."""
    startups = []
    for attempt in attempts:
        fit = read_progress(job_dir(hub, job.id) / f"attempt-{attempt.number}" / "progress.json").get("fit_started_at")
        if fit is not None:
            startups.append(max(0.0, float(fit) - _aware(attempt.started_at).timestamp()))
    spot = [a for a in attempts if a.pool in pools.pools and pools.pools[a.pool].spot]
    return {
        "startup_s": sum(startups) / len(startups) if startups else None,
        "spot_seconds": sum(a.seconds() for a in spot),
        "redone_seconds": sum(a.steps_redone for a in spot) * (seconds_per_step or 0.0),
    }


def _preempted_how(code: int | None) -> str:
    """What a preempted attempt did, by its real exit code (143: SIGTERM came outside the training loop)."""
    if code == EXIT_PREEMPTED:
        return f"checkpointed and exited {EXIT_PREEMPTED}"
    return f"was ended by SIGTERM (exit {code}) outside the training loop; its last checkpoint stands"


def _aware(moment: Any) -> Any:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def scheduler_lock(hub: Hub, cluster: str) -> Iterator[bool]:
    """Held by the one scheduler of ``cluster`` on this hub; yields False if another holds it."""
    folder = hub.home / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "_" for c in cluster)
    fd = os.open(folder / f"scheduler-{slug}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield True
    finally:
        os.close(fd)
