"""The catalog: model and dataset names with owner, visibility and tags, listed a page at a time.

Listings filter in the database (task, name search, tag, owner, visibility) through indexes in the
listing order, page by offset or by cursor, and take totals from maintained counters, so a page of 50
stays fast with a million versions registered (``bench/studio_api.py``, docs/hub.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Select, delete, func, literal, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from oar._core.errors import InvalidInputError, NotFoundError
from oar.hub import name_search
from oar.hub.entities import Page, RegisteredDataset, RegisteredModel
from oar.hub.listing import capped_count, counted, decode_cursor, encode_cursor
from oar.hub.orm import (
    AliasEventRow,
    AliasRow,
    DatasetRow,
    ModelRow,
    ModelTagRow,
    RegisteredDatasetRow,
    RegisteredModelRow,
)

VISIBILITIES = ("private", "public")
MAX_PAGE = 200


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInputError(f"bad page: limit must be 1-{MAX_PAGE} and offset at least 0")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ModelCatalog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def search(
        self,
        *,
        task: str | None = None,
        q: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
        public_only: bool = False,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
    ) -> Page:
        """Registered models matching every given filter, most recently updated first.

        A page starts at ``offset`` or, for deep pages, after ``cursor`` (the previous page's
        ``next_cursor``); each filter reads an index in the listing order, ``q`` goes through
        :mod:`oar.hub.name_search`, and the total is a maintained counter (one filter or none) or a
        count capped at ``COUNT_CAP``.
        """
        check_page(limit, offset)
        if cursor and offset:
            raise InvalidInputError("bad page: give an offset or a cursor, not both")
        with self._sessions() as session:
            query = _filtered(select(RegisteredModelRow), task, tag, owner, public_only)
            if q:
                total, exact = name_search.count(session, query, q)
            else:
                total, exact = _total(session, query, task, tag, owner, public_only)
            if cursor:
                after = decode_cursor(cursor, datetime, str)
                key = tuple_(RegisteredModelRow.updated_at, RegisteredModelRow.name)
                query = query.where(key < tuple_(literal(after[0], RegisteredModelRow.updated_at.type), after[1]))
            if q:  # one row more than the page: whether another page follows
                rows = list(name_search.page(session, query, q, limit + 1, offset))
            else:
                order = (RegisteredModelRow.updated_at.desc(), RegisteredModelRow.name.desc())
                rows = list(session.scalars(query.order_by(*order).limit(limit + 1).offset(offset)).all())
            more, rows = len(rows) > limit, rows[:limit]
            tags = self._tags(session, [r.name for r in rows])
            following = encode_cursor(rows[-1].updated_at, rows[-1].name) if more else None
            return Page([_model(r, tags.get(r.name, ())) for r in rows], total, limit, offset, following, exact)

    def get(self, name: str) -> RegisteredModel:
        with self._sessions() as session:
            row = session.get(RegisteredModelRow, name)
            if row is None:
                raise NotFoundError(f"no model '{name}'")
            return _model(row, self._tags(session, [name]).get(name, ()))

    def update(
        self,
        name: str,
        *,
        visibility: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        owner: str | None = None,
    ) -> RegisteredModel:
        if visibility is not None and visibility not in VISIBILITIES:
            raise InvalidInputError(f"bad visibility '{visibility}': use private or public")
        with self._sessions() as session:
            row = session.get(RegisteredModelRow, name)
            if row is None:
                raise NotFoundError(f"no model '{name}'")
            if visibility is not None:
                row.visibility = visibility
            if description is not None:
                row.description = description
            if owner is not None:
                row.owner = owner
            if tags is not None:
                session.execute(delete(ModelTagRow).where(ModelTagRow.name == name))
                session.add_all(ModelTagRow(name=name, tag=t) for t in sorted(set(tags)))
            row.updated_at = datetime.now(UTC)
            session.commit()
        return self.get(name)

    def delete(self, name: str, actor: str | None = None) -> int:
        """Remove every version of ``name`` and its aliases (their removal is audited); returns versions removed.

        Package files stay in the content-addressed store: another name may hold the same digest.
        """
        with self._sessions() as session:
            if session.get(RegisteredModelRow, name) is None:
                raise NotFoundError(f"no model '{name}'")
            now = datetime.now(UTC)
            for alias in session.scalars(select(AliasRow).where(AliasRow.name == name)).all():
                session.add(
                    AliasEventRow(name=name, alias=alias.alias, from_version=alias.version, actor=actor, at=now)
                )
            session.execute(delete(AliasRow).where(AliasRow.name == name))
            session.execute(delete(ModelTagRow).where(ModelTagRow.name == name))
            removed = session.execute(delete(ModelRow).where(ModelRow.name == name)).rowcount
            session.execute(delete(RegisteredModelRow).where(RegisteredModelRow.name == name))
            session.commit()
            return removed or 0

    @staticmethod
    def _tags(session: Session, names: list[str]) -> dict[str, tuple[str, ...]]:
        if not names:
            return {}
        found: dict[str, list[str]] = {}
        for name, tag in session.execute(
            select(ModelTagRow.name, ModelTagRow.tag).where(ModelTagRow.name.in_(names)).order_by(ModelTagRow.tag)
        ):
            found.setdefault(name, []).append(tag)
        return {n: tuple(t) for n, t in found.items()}


class DatasetCatalog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def search(
        self,
        *,
        q: str | None = None,
        owner: str | None = None,
        public_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        check_page(limit, offset)
        latest = (
            select(DatasetRow.name, func.max(DatasetRow.version).label("latest")).group_by(DatasetRow.name).subquery()
        )
        query: Select = select(RegisteredDatasetRow, latest.c.latest).join(
            latest, latest.c.name == RegisteredDatasetRow.name
        )
        if q:
            query = query.where(RegisteredDatasetRow.name.ilike(f"%{_escape_like(q)}%", escape="\\"))
        if owner:
            query = query.where(RegisteredDatasetRow.owner == owner)
        if public_only:
            query = query.where(RegisteredDatasetRow.visibility == "public")
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.execute(query.order_by(RegisteredDatasetRow.name).limit(limit).offset(offset)).all()
            return Page([_dataset(r, v) for r, v in rows], total, limit, offset)

    def get(self, name: str) -> RegisteredDataset:
        with self._sessions() as session:
            row = session.get(RegisteredDatasetRow, name)
            latest = session.scalar(select(func.max(DatasetRow.version)).where(DatasetRow.name == name))
            if row is None or latest is None:
                raise NotFoundError(f"no dataset '{name}'")
            return _dataset(row, latest)

    def update(self, name: str, *, visibility: str | None = None, owner: str | None = None) -> RegisteredDataset:
        if visibility is not None and visibility not in VISIBILITIES:
            raise InvalidInputError(f"bad visibility '{visibility}': use private or public")
        with self._sessions() as session:
            row = session.get(RegisteredDatasetRow, name)
            if row is None:
                raise NotFoundError(f"no dataset '{name}'")
            if visibility is not None:
                row.visibility = visibility
            if owner is not None:
                row.owner = owner
            row.updated_at = datetime.now(UTC)
            session.commit()
        return self.get(name)


def _filtered(query: Select, task: str | None, tag: str | None, owner: str | None, public_only: bool) -> Select:
    if task:
        query = query.where(RegisteredModelRow.task == task)
    if tag:
        tagged = select(ModelTagRow.name).where(ModelTagRow.name == RegisteredModelRow.name, ModelTagRow.tag == tag)
        query = query.where(tagged.exists())
    if owner:
        query = query.where(RegisteredModelRow.owner == owner)
    if public_only:
        query = query.where(RegisteredModelRow.visibility == "public")
    return query


def _total(
    session: Session, query: Select, task: str | None, tag: str | None, owner: str | None, public_only: bool
) -> tuple[int, bool]:
    """The number of matches and whether it is exact: a counter for no filter or one, else a capped count."""
    single = [f"{k}:{v}" for k, v in (("task", task), ("tag", tag), ("owner", owner)) if v]
    if public_only:
        single.append("visibility:public")
    if len(single) <= 1:
        return counted(session, single[0] if single else "*"), True
    return capped_count(session, query.with_only_columns(RegisteredModelRow.name))


def _model(row: RegisteredModelRow, tags: tuple[str, ...]) -> RegisteredModel:
    return RegisteredModel(
        name=row.name,
        owner=row.owner,
        visibility=row.visibility,
        description=row.description or "",
        task=row.task,
        latest_version=row.latest_version,
        tags=tags,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _dataset(row: RegisteredDatasetRow, latest: int) -> RegisteredDataset:
    return RegisteredDataset(row.name, row.owner, row.visibility, latest, row.created_at)
