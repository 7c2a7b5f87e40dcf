"""The Notebooks page: start, stop and open the caller's own JupyterLab (signed in by a studio ticket)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from oar._core.errors import OarError
from oar.studio.principal import require_user, services
from oar.studio.web.templating import checked_form, flash, render

router = APIRouter()


@router.get("/notebooks")
def notebooks_page(request: Request, next: str = ""):  # type: ignore[no-untyped-def]
    studio, who = services(request), require_user(request)
    if not who.can_create:
        return render(request, "notebooks/index.html", server=None, viewer=True, tutorials=[])
    server = studio.notebooks.status(who)
    if next and server.status == "running":  # back from the hub without its cookie: sign in there again
        return RedirectResponse(studio.notebooks.open_url(who, next if next.startswith("/") else "lab"), 303)
    tutorials = studio.tutorials.list(who)
    return render(request, "notebooks/index.html", server=server, viewer=False, tutorials=tutorials)


@router.get("/notebooks/open")
def open_notebooks(request: Request, path: str = "lab"):  # type: ignore[no-untyped-def]
    studio, who = services(request), require_user(request)
    if studio.notebooks.status(who).status != "running":
        flash(request, "start your notebook server first")
        return RedirectResponse("/notebooks", 303)
    return RedirectResponse(studio.notebooks.open_url(who, path), 303)


@router.post("/notebooks/start")
async def start(request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    await checked_form(request)
    try:
        server = services(request).notebooks.start(who)
    except OarError as exc:
        flash(request, str(exc))
    else:
        flash(request, server.message)
    return RedirectResponse("/notebooks", 303)


@router.post("/notebooks/stop")
async def stop(request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    await checked_form(request)
    flash(request, services(request).notebooks.stop(who).message)
    return RedirectResponse("/notebooks", 303)


@router.post("/notebooks/tutorials/{name}")
async def open_tutorial(name: str, request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    await checked_form(request)
    url = services(request).tutorials.open_copy(who, name)
    return render(request, "notebooks/opening.html", url=url, what=f"your copy of {name}")


@router.post("/notebooks/open-in")
async def open_in_notebook(request: Request):  # type: ignore[no-untyped-def]
    """The "Open in notebook" buttons of dataset, model-version and deployment pages."""
    who = require_user(request)
    form = await checked_form(request)
    kind, ref = form.get("kind", ""), form.get("ref", "")
    url = services(request).starters.open(who, kind, ref)
    return render(request, "notebooks/opening.html", url=url, what=f"{kind} {ref} in a notebook")
