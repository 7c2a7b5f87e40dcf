"""/api/v1/storage: bytes and versions per owner (models, their packages, datasets)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from oar.hub.usage import OwnerUsage
from oar.studio.api.common import ERRORS, Caller, Studio

router = APIRouter(prefix="/storage", tags=["storage"], responses=ERRORS)


class OwnerStorageOut(BaseModel):
    owner: str | None = Field(description="null: models registered without an owner (admins only)")
    model_versions: int
    packages: int = Field(description="distinct packages (by digest) among those versions")
    model_bytes: int = Field(description="package bytes, each distinct package once")
    unsized_versions: int = Field(description="versions whose package size is unknown, counted as 0 bytes")
    dataset_versions: int
    dataset_bytes: int = Field(description="bytes of the stored dataset records (card, counts, sample rows)")
    bytes: int


class StorageOut(BaseModel):
    scope: str = Field(description="'all' for an admin, 'own' for a member")
    owners: list[OwnerStorageOut]
    model_bytes: int = Field(description="the listed owners' packages, each once even when owners share one")
    dataset_bytes: int
    bytes: int


def owner_out(usage: OwnerUsage) -> OwnerStorageOut:
    return OwnerStorageOut(**usage.__dict__, bytes=usage.bytes)


@router.get("", response_model=StorageOut)
def storage(studio: Studio, who: Caller) -> StorageOut:
    """An admin sees every owner; a member their own figures."""
    report = studio.storage.report(who)
    return StorageOut(
        scope="all" if who is not None and who.is_admin else "own",
        owners=[owner_out(u) for u in report.owners],
        model_bytes=report.model_bytes,
        dataset_bytes=report.dataset_bytes,
        bytes=report.bytes,
    )
