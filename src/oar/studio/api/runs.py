"""/api/v1/runs: config, final metrics, status and the per-step metric history; compare several."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from oar.hub import Run
from oar.studio.api.common import ERRORS, Caller, Limit, Offset, PageOut, Studio, Timestamp, page_out
from oar.studio.services.runs import metric_series

router = APIRouter(prefix="/runs", tags=["runs"], responses=ERRORS)


class RunSummary(BaseModel):
    id: str
    kind: str
    status: str
    dataset_name: str | None
    dataset_version: int | None
    owner: str | None
    metrics: dict[str, Any]
    started_at: Timestamp | None
    finished_at: Timestamp | None


class RunOut(RunSummary):
    config: dict[str, Any]
    history: list[dict[str, Any]]


class SeriesOut(BaseModel):
    run_id: str
    series: dict[str, dict[str, list[float]]]


def summary(r: Run) -> RunSummary:
    return RunSummary(
        id=r.id,
        kind=r.kind,
        status=r.status,
        dataset_name=r.dataset_name,
        dataset_version=r.dataset_version,
        owner=r.owner,
        metrics=r.metrics,
        started_at=r.started_at,
        finished_at=r.finished_at,
    )


@router.get("", response_model=PageOut[RunSummary])
def list_runs(
    studio: Studio,
    who: Caller,
    status: str | None = Query(None, max_length=20),
    dataset: str | None = Query(None, max_length=200),
    owner: str | None = Query(None, max_length=80),
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    page = studio.runs.search(who, status=status, dataset=dataset, owner=owner, limit=limit, offset=offset)
    return page_out(page, summary)


@router.get("/compare", response_model=list[SeriesOut])
def compare(
    studio: Studio, who: Caller, ids: str = Query(..., description="run ids, comma-separated")
) -> list[SeriesOut]:
    return [SeriesOut(run_id=r.id, series=metric_series(r)) for r in studio.runs.compare(who, ids.split(","))]


@router.get("/{run_id}", response_model=RunOut)
def get_run(run_id: str, studio: Studio, who: Caller) -> RunOut:
    r = studio.runs.get(who, run_id)
    return RunOut(**summary(r).model_dump(), config=r.config, history=r.history)


@router.get("/{run_id}/history", response_model=SeriesOut)
def history(run_id: str, studio: Studio, who: Caller) -> SeriesOut:
    """Every numeric metric over the run's steps."""
    return SeriesOut(run_id=run_id, series=metric_series(studio.runs.get(who, run_id)))
