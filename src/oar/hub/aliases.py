"""``name@alias`` pointers to model versions, and the audit log of every change to them.

Moving an alias and writing its audit entry happen in one transaction: there is never a move
without a record of who made it, when, and from which version to which.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.orm import Session, sessionmaker

from oar._core.errors import ConflictError, ModelNotFoundError, NotFoundError
from oar.hub.entities import Alias, AliasEvent
from oar.hub.orm import AliasEventRow, AliasRow, ModelRow
from oar.hub.specs import check_alias


class AliasStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def set(self, name: str, alias: str, version: int, actor: str | None = None) -> AliasEvent | None:
        """Point ``name@alias`` at ``version``; returns the audit entry (``None`` if it already pointed there)."""
        check_alias(alias)
        with self._sessions() as session:
            exists = session.scalar(select(ModelRow.id).where(ModelRow.name == name, ModelRow.version == version))
            if exists is None:
                raise ModelNotFoundError(f"model '{name}' has no version {version}")
            row = session.get(AliasRow, (name, alias), with_for_update=True)
            previous = row.version if row else None
            if previous == version:
                return None
            now = datetime.now(UTC)
            if row is None:
                session.add(AliasRow(name=name, alias=alias, version=version, updated_by=actor, updated_at=now))
            else:
                row.version, row.updated_by, row.updated_at = version, actor, now
            event = AliasEventRow(
                name=name, alias=alias, from_version=previous, to_version=version, actor=actor, at=now
            )
            session.add(event)
            try:
                session.commit()
            except SqlIntegrityError as exc:
                raise ConflictError(f"'{name}@{alias}' was changed at the same moment; try again") from exc
            return _event(event)

    def remove(self, name: str, alias: str, actor: str | None = None) -> AliasEvent:
        with self._sessions() as session:
            row = session.get(AliasRow, (name, alias))
            if row is None:
                raise NotFoundError(f"model '{name}' has no alias '{alias}'")
            event = AliasEventRow(
                name=name, alias=alias, from_version=row.version, to_version=None, actor=actor, at=datetime.now(UTC)
            )
            session.delete(row)
            session.add(event)
            session.commit()
            return _event(event)

    def of_model(self, name: str) -> list[Alias]:
        with self._sessions() as session:
            rows = session.scalars(select(AliasRow).where(AliasRow.name == name).order_by(AliasRow.alias)).all()
            return [Alias(r.name, r.alias, r.version, r.updated_by, r.updated_at) for r in rows]

    def history(self, name: str | None = None, alias: str | None = None, limit: int = 100) -> list[AliasEvent]:
        """Audit entries, newest first: of one model (and alias), or of the whole hub."""
        query = select(AliasEventRow)
        if name is not None:
            query = query.where(AliasEventRow.name == name)
        if alias is not None:
            query = query.where(AliasEventRow.alias == alias)
        with self._sessions() as session:
            rows = session.scalars(query.order_by(AliasEventRow.id.desc()).limit(limit)).all()
            return [_event(r) for r in rows]


def _event(row: AliasEventRow) -> AliasEvent:
    return AliasEvent(row.id, row.name, row.alias, row.from_version, row.to_version, row.actor, row.at)
