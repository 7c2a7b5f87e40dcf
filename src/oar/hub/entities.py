"""Plain records the hub hands out; safe to keep after the database session is closed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DatasetVersion:
    name: str
    version: int
    digest: str
    card: dict[str, Any]
    counts: dict[str, Any]
    created_at: datetime

    @property
    def ref(self) -> dict[str, Any]:
        """How lineage points at this dataset."""
        return {"name": self.name, "version": self.version, "digest": self.digest}


@dataclass(frozen=True)
class Run:
    id: str
    kind: str
    status: str
    dataset_name: str | None
    dataset_version: int | None
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    owner: str | None = None


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    digest: str
    task: str
    run_id: str | None
    parent: str | None
    manifest: dict[str, Any]
    created_at: datetime
    path: Path  # where the package is once on this machine; read it through ``Hub.open_version``

    @property
    def model_id(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class RegisteredModel:
    """A model name in the catalog: owner, visibility, tags and its latest version."""

    name: str
    owner: str | None
    visibility: str
    description: str
    task: str
    latest_version: int
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RegisteredDataset:
    name: str
    owner: str | None
    visibility: str
    latest_version: int
    created_at: datetime


@dataclass(frozen=True)
class Alias:
    name: str
    alias: str
    version: int
    updated_by: str | None
    updated_at: datetime


@dataclass(frozen=True)
class AliasEvent:
    """One change of ``name@alias``: ``from_version`` None when created, ``to_version`` None when removed."""

    id: int
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str | None
    at: datetime


@dataclass(frozen=True)
class Page:
    """One page of a listing and the total number of matches.

    ``next_cursor`` continues the listing after this page's last item (``None`` on the last page);
    ``total_exact`` is false when the total was counted only up to a cap (a search or combined filters).
    """

    items: list[Any]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = None
    total_exact: bool = True
