"""Dataset pages: the list, and one dataset's datacard, versions, split sizes and sample rows."""

from __future__ import annotations

from fastapi import APIRouter, Request

from oar.studio.principal import principal, services
from oar.studio.services.datasets import SPLITS, split_sizes
from oar.studio.web.templating import render

router = APIRouter()
SAMPLES_PER_PAGE = 20


@router.get("/datasets")
def dataset_list(request: Request, q: str = "", offset: int = 0):  # type: ignore[no-untyped-def]
    page = services(request).datasets.search(principal(request), q=q or None, limit=50, offset=max(offset, 0))
    return render(request, "datasets/list.html", page=page, q=q)


@router.get("/datasets/{name}")
def dataset_detail(  # type: ignore[no-untyped-def]
    name: str, request: Request, version: int | None = None, split: str = "train", offset: int = 0
):
    studio, who = services(request), principal(request)
    entry = studio.datasets.get(who, name)
    record = studio.datasets.version(who, name, version)
    split = split if split in SPLITS else "train"
    samples = studio.datasets.samples(who, name, record.version, split, SAMPLES_PER_PAGE, max(offset, 0))
    return render(
        request,
        "datasets/detail.html",
        entry=entry,
        record=record,
        versions=studio.datasets.versions(who, name),
        sizes=split_sizes(record),
        samples=samples,
        split=split,
        splits=SPLITS,
    )
