"""The home page: recent activity."""

from __future__ import annotations

from fastapi import APIRouter, Request

from oar.studio.principal import principal, services
from oar.studio.services.activity import recent_activity
from oar.studio.web.templating import render

router = APIRouter()


@router.get("/")
def home(request: Request):  # type: ignore[no-untyped-def]
    studio, who = services(request), principal(request)
    models = studio.models.search(who, limit=5)
    datasets = studio.datasets.search(who, limit=5)
    return render(request, "home.html", activity=recent_activity(studio.hub, who), models=models, datasets=datasets)
