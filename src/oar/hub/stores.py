"""One store per aggregate (datasets, runs, models) over a shared SQLAlchemy engine.

Each call is one transaction; rows are converted to entities before the
session closes, and missing things become ``NotFoundError`` with a hint.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.orm import Session, sessionmaker

from oar._core.errors import InvalidInputError, ModelNotFoundError, NotFoundError, OarError
from oar.hub.entities import DatasetVersion, ModelVersion, Page, Run
from oar.hub.listing import decode_cursor, encode_cursor
from oar.hub.orm import AliasRow, DatasetRow, ModelRow, RegisteredDatasetRow, RegisteredModelRow, RunRow
from oar.hub.specs import ModelRef, parse_model_ref

T = TypeVar("T")
_VERSION_RETRIES = 5


def _with_next_version(sessions: sessionmaker[Session], row_type: type, name: str, make: Callable[[int], T]) -> T:
    """Insert a row at the next free version of ``name``; retry if another process took it first."""
    for _ in range(_VERSION_RETRIES):
        with sessions() as session:
            latest = session.scalar(select(func.max(row_type.version)).where(row_type.name == name)) or 0
            entity = make(latest + 1)
            session.add(entity)  # type: ignore[arg-type]
            try:
                session.commit()
            except SqlIntegrityError:
                session.rollback()
                continue
            return entity
    raise OarError(f"could not assign a version to '{name}': too many concurrent registrations")


class DatasetStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def register(
        self,
        name: str,
        digest: str,
        card: dict[str, Any],
        counts: dict[str, Any],
        samples: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> DatasetVersion:
        """Idempotent: the same content under the same name is the same version."""
        with self._sessions() as session:
            row = session.scalar(select(DatasetRow).where(DatasetRow.name == name, DatasetRow.digest == digest))
            if row is not None:
                return _dataset(row)
        row = _with_next_version(
            self._sessions,
            DatasetRow,
            name,
            lambda v: DatasetRow(
                name=name,
                version=v,
                digest=digest,
                card=card,
                counts=counts,
                samples=samples,
                size=record_size(card, counts, samples),
            ),
        )
        with self._sessions() as session:
            entry = session.get(RegisteredDatasetRow, name)
            if entry is None:
                session.add(RegisteredDatasetRow(name=name, owner=owner, visibility="private"))
            else:
                entry.updated_at = datetime.now(UTC)
            try:
                session.commit()
            except SqlIntegrityError:  # registered at the same moment by another process
                session.rollback()
        return _dataset(row)

    def samples(self, name: str, version: int) -> dict[str, Any] | None:
        """The sample rows stored at registration (``None`` for versions registered before samples existed)."""
        with self._sessions() as session:
            return session.scalar(
                select(DatasetRow.samples).where(DatasetRow.name == name, DatasetRow.version == version)
            )

    def versions(self, name: str) -> list[DatasetVersion]:
        with self._sessions() as session:
            rows = session.scalars(select(DatasetRow).where(DatasetRow.name == name).order_by(DatasetRow.version))
            return [_dataset(r) for r in rows]

    def get(self, name: str, version: int | None = None) -> DatasetVersion:
        with self._sessions() as session:
            query = select(DatasetRow).where(DatasetRow.name == name)
            query = query.where(DatasetRow.version == version) if version else query
            row = session.scalar(query.order_by(DatasetRow.version.desc()).limit(1))
            if row is None:
                known = session.scalars(select(DatasetRow.name).distinct()).all()
                raise NotFoundError(
                    f"no dataset '{name}'"
                    + (f" version {version}" if version else "")
                    + f"; registered: {', '.join(sorted(known)) or 'none'}"
                )
            return _dataset(row)

    def list(self) -> list[DatasetVersion]:
        with self._sessions() as session:
            rows = session.scalars(select(DatasetRow).order_by(DatasetRow.name, DatasetRow.version)).all()
            return [_dataset(r) for r in rows]


class RunStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def start(
        self, kind: str, config: dict[str, Any], dataset: DatasetVersion | None = None, owner: str | None = None
    ) -> Run:
        row = RunRow(
            id=uuid.uuid4().hex[:12],
            kind=kind,
            status="running",
            dataset_name=dataset.name if dataset else None,
            dataset_version=dataset.version if dataset else None,
            config=config,
            metrics={},
            history=[],
            owner=owner,
        )
        with self._sessions() as session:
            session.add(row)
            session.commit()
            return _run(row)

    def finish(self, run_id: str, status: str, metrics: dict[str, Any], history: list[dict[str, Any]]) -> Run:
        with self._sessions() as session:
            row = self._row(session, run_id)
            row.status, row.metrics, row.history = status, metrics, history
            row.finished_at = datetime.now(UTC)
            session.commit()
            return _run(row)

    def update(
        self,
        run_id: str,
        *,
        status: str | None = None,
        metrics: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> Run:
        """Progress of a live run: a new status, metrics merged into the recorded ones, the history so far."""
        with self._sessions() as session:
            row = self._row(session, run_id)
            if status is not None:
                row.status = status
            if metrics:
                row.metrics = {**(row.metrics or {}), **metrics}
            if history is not None:
                row.history = list(history)
            session.commit()
            return _run(row)

    def get(self, run_id: str) -> Run:
        with self._sessions() as session:
            return _run(self._row(session, run_id))

    def list(self) -> list[Run]:
        with self._sessions() as session:
            return [_run(r) for r in session.scalars(select(RunRow).order_by(RunRow.started_at)).all()]

    def page(
        self,
        *,
        status: str | None = None,
        dataset: str | None = None,
        owner: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Run], int]:
        """Runs newest first, filtered in the database, and how many match."""
        query = select(RunRow)
        if status:
            query = query.where(RunRow.status == status)
        if dataset:
            query = query.where(RunRow.dataset_name == dataset)
        if owner:
            query = query.where(RunRow.owner == owner)
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(RunRow.started_at.desc()).limit(limit).offset(offset)).all()
            return [_run(r) for r in rows], total

    @staticmethod
    def _row(session: Session, run_id: str) -> RunRow:
        row = session.get(RunRow, run_id)
        if row is None:
            raise NotFoundError(f"no run '{run_id}'; see `oar runs list`")
        return row


class ModelStore:
    def __init__(self, sessions: sessionmaker[Session], package_path: Callable[[str], Path]) -> None:
        self._sessions = sessions
        self._package_path = package_path

    def insert(self, row: ModelRow, owner: str | None = None) -> ModelVersion | None:
        """Insert a version chosen by the caller and update the catalog entry of its name, in one
        transaction; ``None`` if another process registered that version first."""
        with self._sessions() as session:
            session.add(row)
            try:
                session.flush()
                entry = session.get(RegisteredModelRow, row.name)
                if entry is None:
                    entry = RegisteredModelRow(
                        name=row.name, owner=owner, visibility="private", description="", latest_version=0
                    )
                    session.add(entry)
                entry.task = row.task
                entry.latest_version = max(entry.latest_version or 0, row.version)
                entry.updated_at = datetime.now(UTC)
                session.commit()
            except SqlIntegrityError:
                return None
            return self._model(row)

    def resolve(self, spec: str | ModelRef) -> ModelVersion:
        """``name``, ``name:version`` or ``name@alias`` -> the registered version it names."""
        ref = parse_model_ref(spec) if isinstance(spec, str) else spec
        if ref.alias is None:
            return self.get(ref.name, ref.version)
        with self._sessions() as session:
            version = session.scalar(
                select(AliasRow.version).where(AliasRow.name == ref.name, AliasRow.alias == ref.alias)
            )
            if version is None:
                self.get(ref.name)  # no such model at all: say that first
                known = session.scalars(select(AliasRow.alias).where(AliasRow.name == ref.name)).all()
                raise ModelNotFoundError(
                    f"model '{ref.name}' has no alias '{ref.alias}'; aliases: {', '.join(sorted(known)) or 'none'}"
                )
        return self.get(ref.name, version)

    def versions(self, name: str, limit: int = 50, offset: int = 0, cursor: str | None = None) -> Page:
        """A page of ``name``'s versions, newest first (after ``cursor`` for deep pages), and how many there are.

        Both read the ``(name, version)`` index: the cost is one model's versions, not the table's."""
        if cursor and offset:
            raise InvalidInputError("bad page: give an offset or a cursor, not both")
        query = select(ModelRow).where(ModelRow.name == name)
        if cursor:
            query = query.where(ModelRow.version < decode_cursor(cursor, int)[0])
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(ModelRow).where(ModelRow.name == name)) or 0
            rows = list(session.scalars(query.order_by(ModelRow.version.desc()).limit(limit + 1).offset(offset)).all())
            more, rows = len(rows) > limit, rows[:limit]
            following = encode_cursor(rows[-1].version) if more else None
            return Page([self._model(r) for r in rows], total, limit, offset, following)

    def derived_from(self, model_id: str) -> list[ModelVersion]:
        """Versions whose lineage names ``model_id`` (``name:version``) as their parent."""
        with self._sessions() as session:
            rows = session.scalars(select(ModelRow).where(ModelRow.parent == model_id).order_by(ModelRow.id)).all()
            return [self._model(r) for r in rows]

    def of_run(self, run_id: str) -> list[ModelVersion]:
        with self._sessions() as session:
            rows = session.scalars(select(ModelRow).where(ModelRow.run_id == run_id).order_by(ModelRow.id)).all()
            return [self._model(r) for r in rows]

    def next_version(self, name: str) -> int:
        with self._sessions() as session:
            return (session.scalar(select(func.max(ModelRow.version)).where(ModelRow.name == name)) or 0) + 1

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        with self._sessions() as session:
            query = select(ModelRow).where(ModelRow.name == name)
            query = query.where(ModelRow.version == version) if version else query
            row = session.scalar(query.order_by(ModelRow.version.desc()).limit(1))
            if row is not None:
                return self._model(row)
            versions = session.scalars(select(ModelRow.version).where(ModelRow.name == name)).all()
            if versions:
                listed = ", ".join(str(v) for v in sorted(versions))
                raise ModelNotFoundError(f"model '{name}' has no version {version}; versions: {listed}")
            known = session.scalars(select(RegisteredModelRow.name).order_by(RegisteredModelRow.name).limit(21)).all()
            listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            raise ModelNotFoundError(f"no model '{name}'; registered: {listed or 'none'}")

    def delete(self, name: str, version: int) -> ModelVersion:
        """Remove one version's row (the caller removes its files); ``ModelNotFoundError`` lists what exists."""
        found = self.get(name, version)
        with self._sessions() as session:
            session.execute(sql_delete(ModelRow).where(ModelRow.name == name, ModelRow.version == version))
            session.commit()
        return found

    def uses_digest(self, digest: str) -> bool:
        with self._sessions() as session:
            return session.scalar(select(func.count(ModelRow.id)).where(ModelRow.digest == digest)) > 0

    def list(self) -> list[ModelVersion]:
        with self._sessions() as session:
            rows = session.scalars(select(ModelRow).order_by(ModelRow.name, ModelRow.version)).all()
            return [self._model(r) for r in rows]

    def _model(self, row: ModelRow) -> ModelVersion:
        return ModelVersion(
            name=row.name,
            version=row.version,
            digest=row.digest,
            task=row.task,
            run_id=row.run_id,
            parent=row.parent,
            manifest=row.manifest,
            created_at=row.created_at,
            path=self._package_path(row.digest),
        )


def record_size(*values: Any) -> int:
    """Bytes of these values as the database stores JSON (what a dataset version costs the hub)."""
    return sum(len(json.dumps(value).encode()) for value in values)


def _dataset(row: DatasetRow) -> DatasetVersion:
    return DatasetVersion(row.name, row.version, row.digest, row.card, row.counts, row.created_at)


def _run(row: RunRow) -> Run:
    return Run(
        id=row.id,
        kind=row.kind,
        status=row.status,
        dataset_name=row.dataset_name,
        dataset_version=row.dataset_version,
        config=row.config,
        metrics=row.metrics or {},
        history=row.history or [],
        started_at=row.started_at,
        finished_at=row.finished_at,
        owner=row.owner,
    )
