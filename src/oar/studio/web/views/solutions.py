"""The Solutions page: the recipes `oar solutions run` knows, and the reports of runs made on this hub."""

from __future__ import annotations

from fastapi import APIRouter, Request

from oar.studio.principal import require_user, services
from oar.studio.web.templating import render

router = APIRouter()
HEADLINE = ("test_accuracy", "int8_test_accuracy", "served_accuracy", "package_mb", "p50_ms")


@router.get("/solutions")
def solutions_page(request: Request):  # type: ignore[no-untyped-def]
    require_user(request)
    studio = services(request).solutions
    return render(request, "solutions/list.html", recipes=studio.recipes(), reports=studio.reports(), headline=HEADLINE)
