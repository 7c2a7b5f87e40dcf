"""The job queue's store: jobs and their history, attempts (the ledger's rows) and local nodes.

One transaction per call; rows become frozen records before the session closes. A state change is a
compare-and-set on the job's state (``UPDATE jobs SET state=new WHERE id=? AND state IN (old)``): when it
matches no row another actor moved the job first and the caller gets ``None``, which is how a restarted
scheduler never starts a job twice.

>>> store = JobStore.open(hub)
>>> job = store.submit(name="digits", user="ana", pool="spot", run_id=run.id, spec={...})
>>> store.transition(job.id, {"queued"}, "cancelled", "by ana")
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from oar._core.errors import NotFoundError, OarError
from oar.hub import Hub
from oar.jobs.entities import ACTIVE, TERMINAL, TRANSITIONS, WAITING, Attempt, Job, JobEvent, Node
from oar.jobs.orm import AttemptRow, JobEventRow, JobRow, NodeRow


def now() -> datetime:
    return datetime.now(UTC)


class JobStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @classmethod
    def open(cls, hub: Hub) -> JobStore:
        """The store on the hub's database (``Hub()`` migrated it: revision 0003 holds the job tables)."""
        return cls(sessionmaker(hub.engine, expire_on_commit=False))

    # --- jobs ------------------------------------------------------------------------------------

    def submit(self, **fields: Any) -> Job:
        job_id = uuid.uuid4().hex[:12]
        fields.setdefault("current_pool", fields["pool"])
        row = JobRow(id=job_id, state="queued", version=0, **fields)
        with self._sessions() as session:
            session.add(row)
            session.flush()  # the job row first: no relationship tells the unit of work, and PostgreSQL checks the key
            session.add(JobEventRow(job_id=job_id, state="queued", reason=f"submitted by {row.user}"))
            session.commit()
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self._sessions() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                matches = session.scalars(select(JobRow).where(JobRow.id.startswith(job_id))).all()
                if len(matches) != 1 or not job_id:
                    raise NotFoundError(f"no job '{job_id}'; see `oar jobs list`")
                row = matches[0]
            events = session.scalars(
                select(JobEventRow).where(JobEventRow.job_id == row.id).order_by(JobEventRow.id)
            ).all()
            return _job(row, events)

    def list(self, states: Iterable[str] | None = None, run_id: str | None = None) -> list[Job]:
        with self._sessions() as session:
            query = select(JobRow).order_by(JobRow.created_at)
            if states is not None:
                query = query.where(JobRow.state.in_(list(states)))
            if run_id is not None:
                query = query.where(JobRow.run_id == run_id)
            return [_job(r, ()) for r in session.scalars(query).all()]

    def page(
        self, *, states: Iterable[str] | None = None, user: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Job], int]:
        """Jobs newest first, filtered in the database, and how many match (for listings that paginate)."""
        query = select(JobRow)
        if states is not None:
            query = query.where(JobRow.state.in_(list(states)))
        if user is not None:
            query = query.where(JobRow.user == user)
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            order = (JobRow.created_at.desc(), JobRow.id.desc())
            rows = session.scalars(query.order_by(*order).limit(limit).offset(offset)).all()
            return [_job(r, ()) for r in rows], total

    def waiting(self) -> list[Job]:
        """Jobs to place, best first: higher priority, then earlier submission."""
        with self._sessions() as session:
            query = select(JobRow).where(JobRow.state.in_(WAITING))
            rows = session.scalars(query.order_by(JobRow.priority.desc(), JobRow.created_at, JobRow.id)).all()
            return [_job(r, ()) for r in rows]

    def active_by_user(self) -> dict[str, int]:
        with self._sessions() as session:
            query = select(JobRow.user, func.count()).where(JobRow.state.in_(ACTIVE)).group_by(JobRow.user)
            return {user: count for user, count in session.execute(query).all()}

    def transition(self, job_id: str, expected: Iterable[str], to: str, reason: str, **changes: Any) -> Job | None:
        """Move ``job_id`` from one of ``expected`` to ``to``; ``None`` if it was not in one of them."""
        with self._sessions() as session:
            if not self._move(session, job_id, set(expected), to, reason, changes):
                session.rollback()
                return None
            session.commit()
        return self.get(job_id)

    def place(self, job: Job, attempt: dict[str, Any], reason: str) -> Attempt | None:
        """Claim ``job`` (waiting → placed) and record its next attempt in one transaction."""
        with self._sessions() as session:
            number = (session.scalar(select(func.max(AttemptRow.number)).where(AttemptRow.job_id == job.id)) or 0) + 1
            if not self._move(session, job.id, {job.state} & WAITING, "placed", reason, {}):
                session.rollback()
                return None
            row = AttemptRow(id=f"{job.id}-{number}", job_id=job.id, number=number, state="starting", **attempt)
            session.add(row)
            session.commit()
            return _attempt(row)

    @staticmethod
    def _move(session: Session, job_id: str, expected: set[str], to: str, reason: str, changes: dict) -> bool:
        for state in expected:
            if to not in TRANSITIONS.get(state, frozenset()):
                raise OarError(f"job {job_id}: no transition {state} → {to}")
        stamp = now()
        values = {"state": to, "version": JobRow.version + 1, "updated_at": stamp, "reason": reason, **changes}
        if to in TERMINAL:
            values["finished_at"] = stamp
        result = session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.state.in_(expected)).values(**values))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        session.add(JobEventRow(job_id=job_id, at=stamp, state=to, reason=reason))
        return True

    def note(self, job_id: str, reason: str, **changes: Any) -> None:
        """Record an event (and field changes such as a new pool) without changing the state."""
        with self._sessions() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFoundError(f"no job '{job_id}'")
            for key, value in changes.items():
                setattr(row, key, value)
            session.add(JobEventRow(job_id=job_id, state=row.state, reason=reason))
            session.commit()

    # --- attempts --------------------------------------------------------------------------------

    def attempts(self, job_id: str | None = None, states: Iterable[str] | None = None) -> list[Attempt]:
        with self._sessions() as session:
            query = select(AttemptRow).order_by(AttemptRow.job_id, AttemptRow.number)
            if job_id is not None:
                query = query.where(AttemptRow.job_id == job_id)
            if states is not None:
                query = query.where(AttemptRow.state.in_(list(states)))
            return [_attempt(r) for r in session.scalars(query).all()]

    def attempts_of_jobs(self, job_ids: Iterable[str]) -> list[Attempt]:
        with self._sessions() as session:
            query = select(AttemptRow).where(AttemptRow.job_id.in_(list(job_ids)))
            return [_attempt(r) for r in session.scalars(query.order_by(AttemptRow.job_id, AttemptRow.number)).all()]

    def attempts_of_runs(self, run_ids: Iterable[str]) -> list[Attempt]:
        with self._sessions() as session:
            jobs = select(JobRow.id).where(JobRow.run_id.in_(list(run_ids)))
            query = select(AttemptRow).where(AttemptRow.job_id.in_(jobs)).order_by(AttemptRow.started_at)
            return [_attempt(r) for r in session.scalars(query).all()]

    def update_attempt(self, attempt_id: str, **fields: Any) -> Attempt:
        with self._sessions() as session:
            row = session.get(AttemptRow, attempt_id)
            if row is None:
                raise NotFoundError(f"no attempt '{attempt_id}'")
            for key, value in fields.items():
                setattr(row, key, value)
            session.commit()
            return _attempt(row)

    # --- nodes of locally managed pools ------------------------------------------------------------

    def add_node(self, pool: str, cpus: int) -> Node:
        row = NodeRow(id=f"{pool}-{uuid.uuid4().hex[:6]}", pool=pool, cpus=cpus, state="up")
        with self._sessions() as session:
            session.add(row)
            session.commit()
            return _node(row)

    def nodes(self, states: Iterable[str] = ("up", "notice")) -> list[Node]:
        with self._sessions() as session:
            query = select(NodeRow).where(NodeRow.state.in_(list(states))).order_by(NodeRow.created_at, NodeRow.id)
            return [_node(r) for r in session.scalars(query).all()]

    def set_node_state(self, node_id: str, state: str) -> Node:
        with self._sessions() as session:
            row = session.get(NodeRow, node_id)
            if row is None:
                raise NotFoundError(f"no node '{node_id}'")
            row.state = state
            if state == "notice":
                row.notice_at = now()
            elif state == "gone":
                row.gone_at = now()
            session.commit()
            return _node(row)


def _job(row: JobRow, events: Iterable[JobEventRow]) -> Job:
    return Job(
        id=row.id,
        name=row.name,
        user=row.user,
        state=row.state,
        version=row.version,
        priority=row.priority,
        pool=row.pool,
        current_pool=row.current_pool,
        workers_min=row.workers_min,
        workers_max=row.workers_max,
        cpus=row.cpus,
        retries=row.retries,
        failures=row.failures,
        preemptions=row.preemptions,
        run_id=row.run_id,
        spec=dict(row.spec or {}),
        reason=row.reason,
        cluster=row.cluster,
        cancel_requested=bool(row.cancel_requested),
        deadline=row.deadline,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        events=tuple(JobEvent(e.at, e.state, e.reason) for e in events),
    )


def _attempt(row: AttemptRow) -> Attempt:
    return Attempt(
        id=row.id,
        job_id=row.job_id,
        number=row.number,
        state=row.state,
        pool=row.pool,
        nodes=tuple(row.nodes or ()),
        workers=row.workers,
        cpus=row.cpus,
        node_share=row.node_share,
        price_per_hour=row.price_per_hour,
        handle=dict(row.handle or {}),
        outcome=row.outcome,
        exit_code=row.exit_code,
        start_step=row.start_step,
        last_step=row.last_step,
        checkpoint_step=row.checkpoint_step,
        steps_redone=row.steps_redone,
        checkpoint_seconds=row.checkpoint_seconds,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def _node(row: NodeRow) -> Node:
    return Node(row.id, row.pool, row.cpus, row.state, row.created_at, row.notice_at, row.gone_at)
