"""The storage page: bytes per owner (every owner for an admin, a member's own)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from oar.studio.principal import require_user, services
from oar.studio.web.templating import render

router = APIRouter()


@router.get("/storage")
def storage_page(request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    return render(request, "storage.html", report=services(request).storage.report(who), everyone=who.is_admin)
