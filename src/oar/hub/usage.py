"""How much each owner stores: model versions and packages, dataset versions, in bytes.

Computed from sizes the hub records when a version is registered (``models.size``, ``datasets.size``),
so a report is one grouped query over the version rows and never reads an artifact file. A package
several versions share (the same digest: a re-registration, an alias-free copy) counts once per owner,
and once in the hub's total even when several owners hold it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from oar.hub.orm import DatasetRow, ModelRow, RegisteredDatasetRow, RegisteredModelRow


@dataclass(frozen=True)
class OwnerUsage:
    owner: str | None
    model_versions: int = 0
    packages: int = 0  # distinct package digests among those versions
    model_bytes: int = 0  # each distinct package once
    unsized_versions: int = 0  # versions whose package size is unknown (counted as 0 bytes)
    dataset_versions: int = 0
    dataset_bytes: int = 0

    @property
    def bytes(self) -> int:
        return self.model_bytes + self.dataset_bytes


@dataclass(frozen=True)
class StorageReport:
    owners: list[OwnerUsage]  # largest first
    model_bytes: int  # every package the listed owners hold, each once even when owners share it
    dataset_bytes: int

    @property
    def bytes(self) -> int:
        return self.model_bytes + self.dataset_bytes


def storage_report(sessions: sessionmaker[Session], owner: str | None = None) -> StorageReport:
    """Every owner's figures (models registered without an owner under ``None``), or one ``owner``'s."""
    with sessions() as session:
        models = {row[0]: row[1:] for row in session.execute(_models_by_owner(owner))}
        datasets = {row[0]: row[1:] for row in session.execute(_datasets_by_owner(owner))}
        # one owner's packages are already counted once each; the hub's total counts each digest once
        shared = session.scalar(_all_package_bytes()) if owner is None else None
    owners = [
        OwnerUsage(
            who,
            *(int(v or 0) for v in models.get(who, (0, 0, 0, 0))),
            *(int(v or 0) for v in datasets.get(who, (0, 0))),
        )
        for who in set(models) | set(datasets)
    ]
    owners.sort(key=lambda u: (-u.bytes, u.owner or ""))
    model_bytes = sum(u.model_bytes for u in owners) if shared is None else int(shared)
    return StorageReport(owners, model_bytes, sum(u.dataset_bytes for u in owners))


def _owned_packages(owner: str | None) -> Select:
    """One row per (owner, digest): how many versions name it, its size, how many of them lack one."""
    query = (
        select(
            RegisteredModelRow.owner.label("owner"),
            ModelRow.digest.label("digest"),
            func.count().label("versions"),
            func.max(ModelRow.size).label("size"),
            func.count().filter(ModelRow.size.is_(None)).label("unsized"),
        )
        .join(RegisteredModelRow, RegisteredModelRow.name == ModelRow.name)
        .group_by(RegisteredModelRow.owner, ModelRow.digest)
    )
    return query if owner is None else query.where(RegisteredModelRow.owner == owner)


def _models_by_owner(owner: str | None) -> Select:
    packages = _owned_packages(owner).subquery()
    return select(
        packages.c.owner,
        func.sum(packages.c.versions),
        func.count(),
        func.sum(packages.c.size),
        func.sum(packages.c.unsized),
    ).group_by(packages.c.owner)


def _all_package_bytes() -> Select:
    """Every package the versions name, each digest once (no join: every version has a catalog entry)."""
    per_digest = select(func.max(ModelRow.size).label("size")).group_by(ModelRow.digest).subquery()
    return select(func.sum(per_digest.c.size))


def _datasets_by_owner(owner: str | None) -> Select:
    query = (
        select(RegisteredDatasetRow.owner, func.count(), func.sum(DatasetRow.size))
        .join(RegisteredDatasetRow, RegisteredDatasetRow.name == DatasetRow.name)
        .group_by(RegisteredDatasetRow.owner)
    )
    return query if owner is None else query.where(RegisteredDatasetRow.owner == owner)
