"""Model name search (``q``: part of the name, any case) that stays fast on a large catalog.

On SQLite the name index is numbered in listing order (migration 0008): the newest matches come first
out of the index itself, so a search reads matches until its page is full and stops, whatever the number
of matches (one query; a flag the triggers raise when a write lands behind the newest entry sends search
back to the ways below). Otherwise two ways, tried in this order:

1. the newest ``WINDOW`` entries that pass the other filters, read in listing order from their index and
   tested one by one: a common text ("bert") fills its page here for the cost of a short index range;
2. the name index, which finds every match wherever it sits in the listing, then the newest of those:
   an FTS5 trigram table on SQLite (text of 3+ characters; shorter text is tested row by row), a
   ``pg_trgm`` GIN index on PostgreSQL, read as a materialized step so the planner cannot trade it for a
   walk down the listing order that has to pass every non-matching newer entry first.

The total of a search is counted through the index up to ``SEARCH_COUNT_CAP``, then reported as a
lower bound.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Integer, Select, String, column, delete, func, select, table, text
from sqlalchemy.orm import Session, aliased

from oar.hub.orm import CatalogCountRow, RegisteredModelRow

WINDOW = 2_000
SEARCH_COUNT_CAP = 1_000
_FTS = table("registered_models_fts", column("rowid", Integer), column("name", String))
UNORDERED = "fts:unordered"  # the catalog_counts key the triggers set when the rowids stop following the listing


def page(session: Session, query: Select, q: str, limit: int, offset: int) -> Sequence[RegisteredModelRow]:
    """``limit`` matches of ``q`` among the rows of ``query`` (already filtered), after skipping ``offset``."""
    need = offset + limit
    if _in_listing_order(session, q):
        return _newest_by_index(session, query, q, need)[offset:need]
    found = _recent(session, query, q, need)
    if len(found) < need and _longer_than_window(session, query):
        found = _indexed(session, query, q, need)
    return found[offset:need]


def count(session: Session, query: Select, q: str) -> tuple[int, bool]:
    """How many rows of ``query`` match ``q``, counted up to the cap; and whether that is exact."""
    names = _restrict(session, query.with_only_columns(RegisteredModelRow.name), q)
    n = session.scalar(select(func.count()).select_from(names.limit(SEARCH_COUNT_CAP + 1).subquery())) or 0
    return min(n, SEARCH_COUNT_CAP), n <= SEARCH_COUNT_CAP


def _order(entity) -> tuple:  # type: ignore[no-untyped-def]
    return entity.updated_at.desc(), entity.name.desc()


def _recent(session: Session, query: Select, q: str, need: int) -> list[RegisteredModelRow]:
    window = aliased(RegisteredModelRow, query.order_by(*_order(RegisteredModelRow)).limit(WINDOW).subquery())
    hits = select(window).where(_contains(window.name, q)).order_by(*_order(window)).limit(need)
    return list(session.scalars(hits).all())


def _longer_than_window(session: Session, query: Select) -> bool:
    names = query.with_only_columns(RegisteredModelRow.name).limit(WINDOW + 1).subquery()
    return (session.scalar(select(func.count()).select_from(names)) or 0) > WINDOW


def _indexed(session: Session, query: Select, q: str, need: int) -> list[RegisteredModelRow]:
    matches = _restrict(session, query, q)
    if session.get_bind().dialect.name == "postgresql":
        hits = matches.cte("hits").prefix_with("MATERIALIZED")
        entity = aliased(RegisteredModelRow, hits)
        return list(session.scalars(select(entity).order_by(*_order(entity)).limit(need)).all())
    # SQLite sorts the matches' keys alone, then reads the page's rows: ~10% less CPU than sorting whole rows
    keys = matches.with_only_columns(RegisteredModelRow.name).order_by(*_order(RegisteredModelRow)).limit(need)
    names = session.scalars(keys).all()
    rows = {r.name: r for r in session.scalars(select(RegisteredModelRow).where(RegisteredModelRow.name.in_(names)))}
    return [rows[n] for n in names]


def renumber(session: Session) -> int:
    """Number SQLite's name index in listing order again and clear the flag; returns the entries numbered.

    For a hub whose index was flagged (a write landed behind the newest entry): search reads it newest
    first again. The caller commits; writers wait for that transaction (a few seconds at 200,000 names).
    """
    if session.get_bind().dialect.name != "sqlite":
        return 0
    session.execute(text("DELETE FROM registered_models_fts"))
    numbered = session.execute(
        text(
            "INSERT INTO registered_models_fts (rowid, name) "
            "SELECT row_number() OVER (ORDER BY updated_at, name), name FROM registered_models"
        )
    ).rowcount
    session.execute(delete(CatalogCountRow).where(CatalogCountRow.key == UNORDERED))
    return numbered


def _in_listing_order(session: Session, q: str) -> bool:
    """Whether SQLite's name index can hand out matches newest first (its rowids follow the listing)."""
    if session.get_bind().dialect.name != "sqlite" or len(q) < 3:
        return False
    return not session.scalar(select(CatalogCountRow.n).where(CatalogCountRow.key == UNORDERED))


def _newest_by_index(session: Session, query: Select, q: str, need: int) -> list[RegisteredModelRow]:
    """The index's matches by descending rowid (the listing order), through ``query``'s filters, stopping
    at ``need``: the cost is the matches read before the page is full, not all of them."""
    hits = _restrict(session, query, q).order_by(_FTS.c.rowid.desc()).limit(need)
    return list(session.scalars(hits).all())


def _restrict(session: Session, query: Select, q: str) -> Select:
    """``query`` narrowed to names containing ``q``, through the name index where it can answer."""
    if session.get_bind().dialect.name == "sqlite" and len(q) >= 3:
        phrase = '"' + q.replace('"', '""') + '"'  # a trigram phrase is a substring match, any case
        return query.join(_FTS, _FTS.c.name == RegisteredModelRow.name).where(
            text("registered_models_fts MATCH :phrase").bindparams(phrase=phrase)
        )
    return query.where(_contains(RegisteredModelRow.name, q))


def _contains(name, q: str):  # type: ignore[no-untyped-def]
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return name.ilike(f"%{escaped}%", escape="\\")
