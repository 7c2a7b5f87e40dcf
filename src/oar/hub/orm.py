"""SQLAlchemy tables of the hub. Rows never leave ``oar.hub``: stores convert them to entities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(80), index=True)
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    samples: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # a few rows per split
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # bytes of card, counts and samples
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_started_at", "started_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # "train" for now
    status: Mapped[str] = mapped_column(String(20))  # running | finished | failed
    dataset_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    dataset_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(80), nullable=True)


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index("ix_models_task", "task"),
        Index("ix_models_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(80), index=True)
    task: Mapped[str] = mapped_column(String(60))
    run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    parent: Mapped[str | None] = mapped_column(String(220), nullable=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # package bytes (None: registered before)


class RegisteredModelRow(Base):
    """One entry per model name: who owns it, who may see it, and a summary of its latest version.

    Listings run newest first, ``(updated_at, name)`` descending: each filter has an index that ends in
    that order, so a page (or a cursor's next page) reads 50 index entries whatever the table's size.
    """

    __tablename__ = "registered_models"
    __table_args__ = (
        Index("ix_registered_models_recent", "updated_at", "name"),
        Index("ix_registered_models_task_recent", "task", "updated_at", "name"),
        Index("ix_registered_models_owner_recent", "owner", "updated_at", "name"),
        Index("ix_registered_models_visibility_recent", "visibility", "updated_at", "name"),
    )

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    visibility: Mapped[str] = mapped_column(String(10), default="private")  # private | public
    description: Mapped[str] = mapped_column(Text, default="")
    task: Mapped[str] = mapped_column(String(60))
    latest_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ModelTagRow(Base):
    __tablename__ = "model_tags"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class CatalogCountRow(Base):
    """How many catalog entries match one filter (``*``, ``task:T``, ``owner:O``, ``tag:T``, ``public``).

    Kept by database triggers (migration 0004) on every insert, update and delete of the catalog, so
    a listing's total is one primary-key read instead of a count over the table.
    """

    __tablename__ = "catalog_counts"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


# Built by migration 0004 outside this metadata (a full-text virtual table and its shadow tables on
# SQLite, a trigram index on PostgreSQL): schema comparisons leave them out.
SEARCH_INDEX_NAMES = ("registered_models_fts", "ix_registered_models_name_trgm")


def outside_metadata(name: str | None) -> bool:
    return name is not None and name.startswith(SEARCH_INDEX_NAMES)


class RegisteredDatasetRow(Base):
    __tablename__ = "registered_datasets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    visibility: Mapped[str] = mapped_column(String(10), default="private")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class AliasRow(Base):
    """``name@alias`` -> version: where the alias points now."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class AliasEventRow(Base):
    """The audit log: every change of an alias, who made it, when, from which version to which."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_name_alias", "name", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the alias was removed
    actor: Mapped[str | None] = mapped_column(String(80), nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
