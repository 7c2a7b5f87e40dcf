"""Competitions and submissions in the hub database, as frozen records (rows never leave this module)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from oar._core.errors import ConflictError, NotFoundError
from oar.competitions.orm import CompetitionRow, SubmissionRow
from oar.hub import Hub

QUEUED, RUNNING, SCORED, FAILED, CANCELLED = "queued", "running", "scored", "failed", "cancelled"
NOT_COUNTED = frozenset({FAILED, CANCELLED})  # a submission in these states costs no quota


def now() -> datetime:
    return datetime.now(UTC)


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Competition:
    id: int
    name: str
    title: str
    owner: str
    spec: dict[str, Any]
    dataset_name: str
    dataset_version: int
    test_size: int
    public_size: int
    starts_at: datetime
    ends_at: datetime
    created_at: datetime

    def ended(self, at: datetime) -> bool:
        return at >= self.ends_at

    def open_phase(self, at: datetime) -> dict[str, Any] | None:
        for phase in self.spec["phases"]:
            if utc(datetime.fromisoformat(phase["start"])) <= at < utc(datetime.fromisoformat(phase["end"])):
                return phase
        return None


@dataclass(frozen=True)
class Submission:
    id: str
    competition_id: int
    user: str
    kind: str
    source: str
    note: str
    status: str
    error: str
    job_id: str | None
    public_score: float | None
    private_score: float | None
    details: dict[str, Any] = field(default_factory=dict)
    selected: bool = False
    submitted_at: datetime = field(default_factory=now)
    scored_at: datetime | None = None


class CompetitionStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @classmethod
    def open(cls, hub: Hub) -> CompetitionStore:
        return cls(sessionmaker(hub.engine, expire_on_commit=False))

    def add(self, **fields: Any) -> Competition:
        with self._sessions() as session:
            if session.scalar(select(CompetitionRow.id).where(CompetitionRow.name == fields["name"])) is not None:
                raise ConflictError(f"a competition named '{fields['name']}' exists")
            row = CompetitionRow(**fields)
            session.add(row)
            session.commit()
            return _competition(row)

    def get(self, name: str) -> Competition:
        with self._sessions() as session:
            row = session.scalar(select(CompetitionRow).where(CompetitionRow.name == name))
            if row is None:
                raise NotFoundError(f"no competition '{name}'; see `oar competitions list`")
            return _competition(row)

    def by_id(self, competition_id: int) -> Competition:
        with self._sessions() as session:
            row = session.get(CompetitionRow, competition_id)
            if row is None:
                raise NotFoundError(f"no competition {competition_id}")
            return _competition(row)

    def list(self) -> list[Competition]:
        with self._sessions() as session:
            rows = session.scalars(select(CompetitionRow).order_by(CompetitionRow.ends_at.desc())).all()
            return [_competition(r) for r in rows]

    def close(self, competition_id: int, at: datetime) -> Competition:
        """End the competition at ``at``: the last phase ends then (the private board is revealed)."""
        with self._sessions() as session:
            row = session.get(CompetitionRow, competition_id)
            if row is None:
                raise NotFoundError(f"no competition {competition_id}")
            spec = dict(row.spec)
            phases = [dict(p) for p in spec["phases"]]
            phases = [p for p in phases if utc(datetime.fromisoformat(p["start"])) < at] or phases[:1]
            phases[-1]["end"] = at.isoformat()
            spec["phases"] = phases
            row.spec, row.ends_at = spec, at
            session.commit()
            return _competition(row)

    def update_spec(self, competition_id: int, changes: dict[str, Any], title: str | None = None) -> Competition:
        """Replace top-level keys of the stored spec (and the title column)."""
        with self._sessions() as session:
            row = session.get(CompetitionRow, competition_id)
            if row is None:
                raise NotFoundError(f"no competition {competition_id}")
            row.spec = {**row.spec, **changes}
            if title is not None:
                row.title = title
            session.commit()
            return _competition(row)

    def add_submission(self, **fields: Any) -> Submission:
        fields.setdefault("id", uuid.uuid4().hex[:12])
        with self._sessions() as session:
            row = SubmissionRow(status=QUEUED, error="", details={}, selected=False, **fields)
            session.add(row)
            session.commit()
            return _submission(row)

    def submission(self, submission_id: str) -> Submission:
        with self._sessions() as session:
            row = session.get(SubmissionRow, submission_id)
            if row is None:
                raise NotFoundError(f"no submission '{submission_id}'")
            return _submission(row)

    def submissions(self, competition_id: int, user: str | None = None) -> list[Submission]:
        with self._sessions() as session:
            query = select(SubmissionRow).where(SubmissionRow.competition_id == competition_id)
            if user is not None:
                query = query.where(SubmissionRow.user == user)
            rows = session.scalars(query.order_by(SubmissionRow.submitted_at, SubmissionRow.id)).all()
            return [_submission(r) for r in rows]

    def update(
        self, submission_id: str, only_if: set[str] | None = None, only_if_job: str | None = None, **fields: Any
    ) -> bool:
        """Change a submission; with ``only_if``, only from those states, with ``only_if_job``, only while it
        waits on that job (compare-and-sets: of two callers, one wins)."""
        with self._sessions() as session:
            query = update(SubmissionRow).where(SubmissionRow.id == submission_id)
            if only_if is not None:
                query = query.where(SubmissionRow.status.in_(list(only_if)))
            if only_if_job is not None:
                query = query.where(SubmissionRow.job_id == only_if_job)
            changed = session.execute(query.values(**fields)).rowcount
            session.commit()
            return bool(changed)


def _competition(row: CompetitionRow) -> Competition:
    return Competition(
        id=row.id,
        name=row.name,
        title=row.title,
        owner=row.owner,
        spec=dict(row.spec),
        dataset_name=row.dataset_name,
        dataset_version=row.dataset_version,
        test_size=row.test_size,
        public_size=row.public_size,
        starts_at=utc(row.starts_at),
        ends_at=utc(row.ends_at),
        created_at=utc(row.created_at),
    )


def _submission(row: SubmissionRow) -> Submission:
    return Submission(
        id=row.id,
        competition_id=row.competition_id,
        user=row.user,
        kind=row.kind,
        source=row.source,
        note=row.note,
        status=row.status,
        error=row.error,
        job_id=row.job_id,
        public_score=row.public_score,
        private_score=row.private_score,
        details=dict(row.details or {}),
        selected=bool(row.selected),
        submitted_at=utc(row.submitted_at),
        scored_at=utc(row.scored_at) if row.scored_at else None,
    )
