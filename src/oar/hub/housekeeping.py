"""Housekeeping of the artifact store: packages no version references, and how much each owner stores.

A package becomes garbage when the last version naming its digest goes without its files (deleting a
whole model from the studio keeps them, since another name may hold the same content) or when a
registration stopped between the upload and the database row. ``oar hub gc`` lists such packages first
and removes them only when asked; a package younger than the grace period is never touched (a
registration may be between its upload and its row), and the caller names what running deployments
and jobs hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from oar._core.errors import OarError
from oar.hub.hub import Hub
from oar.hub.orm import ModelRow, RegisteredModelRow
from oar.package import MANIFEST_FILE


@dataclass(frozen=True)
class Unreferenced:
    digest: str
    size: int
    stored_at: datetime
    model: str | None = None  # the name its manifest records (None: unreadable)
    owner: str | None = None  # that name's owner, while the catalog still has the name


def reclaimable_by_owner(garbage: Iterable[Unreferenced]) -> dict[str | None, int]:
    """Bytes the listed packages would free, per owner of the model they came from (None: unknown)."""
    out: dict[str | None, int] = {}
    for item in garbage:
        out[item.owner] = out.get(item.owner, 0) + item.size
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class OwnerStorage:
    owner: str | None
    versions: int
    bytes: int  # package bytes of those versions (versions registered before sizes were kept count 0)


def referenced(hub: Hub) -> set[str]:
    with hub.sessions() as session:
        return set(session.scalars(select(ModelRow.digest).distinct()).all())


def unreferenced(hub: Hub, grace: timedelta, keep: Iterable[str] = ()) -> list[Unreferenced]:
    """Packages in the store that no version references, older than ``grace`` and not in ``keep``."""
    held = referenced(hub) | set(keep)
    cutoff = datetime.now(UTC) - grace
    found = []
    for digest in hub.artifacts.digests():
        if digest in held:
            continue
        stored_at = hub.artifacts.stored_at(digest)
        if stored_at <= cutoff:
            model = _model_name(hub, digest)
            found.append(Unreferenced(digest, hub.artifacts.size(digest), stored_at, model, _owner(hub, model)))
    return sorted(found, key=lambda u: u.stored_at)


def _model_name(hub: Hub, digest: str) -> str | None:
    """The name in the package's manifest: one small read, no download of the package."""
    try:
        name = json.loads(hub.artifacts.read_file(digest, MANIFEST_FILE)).get("name")
    except (OarError, OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _owner(hub: Hub, model: str | None) -> str | None:
    if model is None:
        return None
    with hub.sessions() as session:
        return session.scalar(select(RegisteredModelRow.owner).where(RegisteredModelRow.name == model))


def remove(hub: Hub, garbage: Iterable[Unreferenced], keep: Iterable[str] = ()) -> list[Unreferenced]:
    """Remove what :func:`unreferenced` listed, checking each digest again just before: a version may have
    been registered with the same content meanwhile."""
    removed, held = [], set(keep)
    for item in garbage:
        with hub.sessions() as session:
            if item.digest in held or session.scalar(select(ModelRow.id).where(ModelRow.digest == item.digest)):
                continue
        hub.artifacts.remove(item.digest)
        removed.append(item)
    return removed


def storage_by_owner(hub: Hub) -> list[OwnerStorage]:
    """Model versions and package bytes per catalog owner, largest first (each shared package once)."""
    return [OwnerStorage(u.owner, u.model_versions, u.model_bytes) for u in hub.storage().owners if u.model_versions]
