"""/api/v1/models: catalog, versions (manifest, metrics, parity, files), lineage, aliases and their audit log."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from oar.hub import Alias, AliasEvent, ModelVersion, RegisteredModel
from oar.studio.api.common import ERRORS, Caller, Cursor, Limit, Offset, PageOut, Studio, Timestamp, page_out

router = APIRouter(prefix="/models", tags=["models"], responses={**ERRORS, 409: {"description": "conflict"}})


class ModelOut(BaseModel):
    name: str
    owner: str | None
    visibility: str
    description: str
    task: str
    latest_version: int
    tags: list[str]
    created_at: Timestamp
    updated_at: Timestamp


class VersionSummary(BaseModel):
    name: str
    version: int
    model_id: str
    digest: str
    task: str
    run_id: str | None
    parent: str | None
    metrics: dict[str, float]
    created_at: Timestamp


class FileOut(BaseModel):
    path: str
    size: int
    digest: str


class VersionOut(VersionSummary):
    manifest: dict[str, Any]
    parity: dict[str, Any] | None
    files: list[FileOut]


class ModelPatch(BaseModel):
    visibility: Literal["private", "public"] | None = None
    description: str | None = Field(None, max_length=5000)
    tags: list[str] | None = Field(None, max_length=50)


class AliasOut(BaseModel):
    alias: str
    version: int
    updated_by: str | None
    updated_at: Timestamp


class AliasIn(BaseModel):
    version: int = Field(ge=1)


class AliasEventOut(BaseModel):
    id: int
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str | None
    at: Timestamp


class LineageOut(BaseModel):
    nodes: list[dict[str, Any]]
    edges: list[dict[str, str]]


def model_out(m: RegisteredModel) -> ModelOut:
    return ModelOut(
        name=m.name,
        owner=m.owner,
        visibility=m.visibility,
        description=m.description,
        task=m.task,
        latest_version=m.latest_version,
        tags=list(m.tags),
        created_at=m.created_at,
        updated_at=m.updated_at,
    )


def summary(v: ModelVersion) -> VersionSummary:
    return VersionSummary(
        name=v.name,
        version=v.version,
        model_id=v.model_id,
        digest=v.digest,
        task=v.task,
        run_id=v.run_id,
        parent=v.parent,
        metrics=v.manifest.get("metrics", {}),
        created_at=v.created_at,
    )


def event_out(e: AliasEvent) -> AliasEventOut:
    return AliasEventOut(
        id=e.id,
        name=e.name,
        alias=e.alias,
        from_version=e.from_version,
        to_version=e.to_version,
        actor=e.actor,
        at=e.at,
    )


def alias_out(a: Alias) -> AliasOut:
    return AliasOut(alias=a.alias, version=a.version, updated_by=a.updated_by, updated_at=a.updated_at)


@router.get("", response_model=PageOut[ModelOut])
def list_models(
    studio: Studio,
    who: Caller,
    task: str | None = Query(None, max_length=60),
    q: str | None = Query(None, max_length=200, description="part of the name"),
    tag: str | None = Query(None, max_length=64),
    owner: str | None = Query(None, max_length=80),
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Newest first; deep pages go on from ``next_cursor`` (an offset pages too, at a cost that grows with it)."""
    page = studio.models.search(who, task=task, q=q, tag=tag, owner=owner, limit=limit, offset=offset, cursor=cursor)
    return page_out(page, model_out)


class StorageOut(BaseModel):
    owner: str | None
    versions: int
    bytes: int


@router.get("/storage", response_model=list[StorageOut])
def storage(studio: Studio, who: Caller) -> list[StorageOut]:
    """Model versions and package bytes per owner (an admin sees every owner, a member their own)."""
    return [StorageOut(owner=f.owner, versions=f.versions, bytes=f.bytes) for f in studio.models.storage(who)]


@router.get("/resolve", response_model=VersionSummary)
def resolve(ref: str, studio: Studio, who: Caller) -> VersionSummary:
    """``name``, ``name:version`` or ``name@alias`` -> the version it names now."""
    return summary(studio.models.resolve(who, ref))


@router.get("/{name}", response_model=ModelOut)
def get_model(name: str, studio: Studio, who: Caller) -> ModelOut:
    return model_out(studio.models.get(who, name))


@router.patch("/{name}", response_model=ModelOut)
def update_model(name: str, body: ModelPatch, studio: Studio, who: Caller) -> ModelOut:
    return model_out(
        studio.models.update(who, name, visibility=body.visibility, description=body.description, tags=body.tags)
    )


@router.delete("/{name}", status_code=204)
def delete_model(name: str, studio: Studio, who: Caller) -> Response:
    studio.models.delete(who, name)
    return Response(status_code=204)


@router.get("/{name}/versions", response_model=PageOut[VersionSummary])
def list_versions(
    name: str, studio: Studio, who: Caller, limit: Limit = 50, offset: Offset = 0, cursor: Cursor = None
) -> dict[str, Any]:
    return page_out(studio.models.versions(who, name, limit, offset, cursor), summary)


@router.get("/{name}/versions/{version}", response_model=VersionOut)
def get_version(name: str, version: int, studio: Studio, who: Caller) -> VersionOut:
    v = studio.models.version(who, name, version)
    files = [FileOut(path=f.path, size=f.size, digest=f.digest) for f in studio.models.files(v)]
    return VersionOut(**summary(v).model_dump(), manifest=v.manifest, parity=v.manifest.get("parity"), files=files)


@router.get("/{name}/versions/{version}/lineage", response_model=LineageOut)
def lineage(name: str, version: int, studio: Studio, who: Caller) -> dict[str, Any]:
    return studio.models.lineage(who, name, version)


@router.get("/{name}/aliases", response_model=list[AliasOut])
def list_aliases(name: str, studio: Studio, who: Caller) -> list[AliasOut]:
    return [alias_out(a) for a in studio.models.aliases(who, name)]


@router.get("/{name}/aliases/history", response_model=list[AliasEventOut])
def alias_history(name: str, studio: Studio, who: Caller, alias: str | None = None) -> list[AliasEventOut]:
    return [event_out(e) for e in studio.models.alias_history(who, name, alias)]


@router.put("/{name}/aliases/{alias}", response_model=AliasEventOut | None)
def set_alias(name: str, alias: str, body: AliasIn, studio: Studio, who: Caller) -> AliasEventOut | None:
    """Point ``name@alias`` at a version; the audit entry comes back (``null`` if nothing changed).
    Deployments of ``name@alias`` roll over to the new version."""
    event = studio.models.set_alias(who, name, alias, body.version)
    return event_out(event) if event else None


@router.delete("/{name}/aliases/{alias}", response_model=AliasEventOut)
def remove_alias(name: str, alias: str, studio: Studio, who: Caller) -> AliasEventOut:
    return event_out(studio.models.remove_alias(who, name, alias))
