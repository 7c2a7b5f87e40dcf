"""Run pages: the list (tick two or more to compare), one run with its metric curves, the comparison."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from oar.studio.principal import require_user, services
from oar.studio.services.runs import metric_series
from oar.studio.web.templating import render

router = APIRouter()


@router.get("/runs")
def run_list(request: Request, status: str = "", offset: int = 0):  # type: ignore[no-untyped-def]
    page = services(request).runs.search(require_user(request), status=status or None, limit=50, offset=max(offset, 0))
    return render(request, "runs/list.html", page=page, status=status)


@router.get("/runs/compare")
def compare(request: Request, ids: Annotated[list[str] | None, Query()] = None):  # type: ignore[no-untyped-def]
    split = [part for value in ids or [] for part in value.split(",")]
    runs = services(request).runs.compare(require_user(request), split)
    series = {run.id: metric_series(run) for run in runs}
    metrics = sorted({key for s in series.values() for key in s})
    return render(request, "runs/compare.html", runs=runs, series=series, metrics=metrics)


@router.get("/runs/{run_id}")
def run_detail(run_id: str, request: Request):  # type: ignore[no-untyped-def]
    studio, who = services(request), require_user(request)
    run = studio.runs.get(who, run_id)
    series = metric_series(run)
    return render(
        request,
        "runs/detail.html",
        run=run,
        series={run.id: series},
        metrics=sorted(series),
        models=studio.hub.models.of_run(run.id),
    )
