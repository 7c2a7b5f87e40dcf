"""Job pages: the queue (filter by state), one job with its placement history, events, cost and log; cancel."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from oar.jobs.store import now
from oar.studio.principal import require_user, services
from oar.studio.services.jobs import LOG_LINES, STATES
from oar.studio.web.templating import checked_form, flash, render

router = APIRouter()


@router.get("/jobs")
def job_list(request: Request, state: str = "", owner: str = "", offset: int = 0):  # type: ignore[no-untyped-def]
    who = require_user(request)
    page = services(request).jobs.search(who, state=state or None, owner=owner or None, limit=50, offset=max(offset, 0))
    return render(request, "jobs/list.html", page=page, state=state, owner=owner, states=STATES)


@router.get("/jobs/{job_id}")
def job_detail(job_id: str, request: Request):  # type: ignore[no-untyped-def]
    studio, who = services(request), require_user(request)
    detail = studio.jobs.get(who, job_id)
    _, log = studio.jobs.logs(who, detail.job.id, LOG_LINES)
    return render(
        request,
        "jobs/detail.html",
        detail=detail,
        job=detail.job,
        cost=detail.cost,
        log=log,
        log_lines=LOG_LINES,
        now=now(),
        can_cancel=studio.jobs.can_cancel(who, detail.job),
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel(job_id: str, request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    await checked_form(request)
    job = services(request).jobs.cancel(who, job_id)
    flash(request, f"job {job.id} cancelled" if job.state == "cancelled" else f"job {job.id}: cancel requested")
    return RedirectResponse(f"/jobs/{job.id}", 303)
