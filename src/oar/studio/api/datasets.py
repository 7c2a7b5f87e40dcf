"""/api/v1/datasets: the catalog, versions with datacard and split sizes, and a page of sample rows."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from oar.hub import DatasetVersion, RegisteredDataset
from oar.studio.api.common import ERRORS, Caller, Limit, Offset, PageOut, Studio, Timestamp, page_out
from oar.studio.services.datasets import split_sizes

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=ERRORS)


class DatasetOut(BaseModel):
    name: str
    owner: str | None
    visibility: str
    latest_version: int
    created_at: Timestamp


class DatasetVersionOut(BaseModel):
    name: str
    version: int
    digest: str
    card: dict[str, Any]
    splits: dict[str, int]
    labels: dict[str, Any]
    created_at: Timestamp


class DatasetPatch(BaseModel):
    visibility: Literal["private", "public"] | None = None


def dataset_out(d: RegisteredDataset) -> DatasetOut:
    return DatasetOut(
        name=d.name, owner=d.owner, visibility=d.visibility, latest_version=d.latest_version, created_at=d.created_at
    )


def version_out(v: DatasetVersion) -> DatasetVersionOut:
    return DatasetVersionOut(
        name=v.name,
        version=v.version,
        digest=v.digest,
        card=v.card,
        splits=split_sizes(v),
        labels=v.counts.get("labels", {}),
        created_at=v.created_at,
    )


@router.get("", response_model=PageOut[DatasetOut])
def list_datasets(
    studio: Studio, who: Caller, q: str | None = None, owner: str | None = None, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    return page_out(studio.datasets.search(who, q=q, owner=owner, limit=limit, offset=offset), dataset_out)


@router.get("/{name}", response_model=DatasetOut)
def get_dataset(name: str, studio: Studio, who: Caller) -> DatasetOut:
    return dataset_out(studio.datasets.get(who, name))


@router.patch("/{name}", response_model=DatasetOut)
def update_dataset(name: str, body: DatasetPatch, studio: Studio, who: Caller) -> DatasetOut:
    return dataset_out(studio.datasets.update(who, name, visibility=body.visibility))


@router.get("/{name}/versions", response_model=list[DatasetVersionOut])
def list_versions(name: str, studio: Studio, who: Caller) -> list[DatasetVersionOut]:
    return [version_out(v) for v in studio.datasets.versions(who, name)]


@router.get("/{name}/versions/{version}", response_model=DatasetVersionOut)
def get_version(name: str, version: int, studio: Studio, who: Caller) -> DatasetVersionOut:
    return version_out(studio.datasets.version(who, name, version))


@router.get("/{name}/versions/{version}/samples", response_model=PageOut[dict[str, Any]])
def samples(
    name: str,
    version: int,
    studio: Studio,
    who: Caller,
    split: Literal["train", "valid", "test"] = "train",
    limit: Limit = 20,
    offset: Offset = 0,
) -> dict[str, Any]:
    return page_out(studio.datasets.samples(who, name, version, split, limit, offset), lambda row: row)
