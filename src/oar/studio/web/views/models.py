"""Model pages: the list with filters, one model (versions, aliases and their history), one version
(metrics, parity, manifest, files, lineage graph, "try it")."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from oar._core.errors import InvalidInputError
from oar.studio.principal import principal, services
from oar.studio.web.lineage import lineage_svg
from oar.studio.web.templating import checked_form, flash, render

router = APIRouter()
TASKS = ("text-classification", "image-classification", "generic")


@router.get("/models")
def model_list(  # type: ignore[no-untyped-def]
    request: Request, q: str = "", task: str = "", tag: str = "", owner: str = "", offset: int = 0
):
    filters = {"q": q or None, "task": task or None, "tag": tag or None, "owner": owner or None}
    page = services(request).models.search(principal(request), limit=50, offset=max(offset, 0), **filters)
    return render(request, "models/list.html", page=page, q=q, task=task, tag=tag, owner=owner, tasks=TASKS)


@router.get("/models/{name}")
def model_detail(name: str, request: Request, offset: int = 0):  # type: ignore[no-untyped-def]
    studio, who = services(request), principal(request)
    entry = studio.models.get(who, name)
    versions = studio.models.versions(who, name, 50, max(offset, 0))
    deployments = [d for d in studio.deployments.list(who) if d.model == name] if who else []
    return render(
        request,
        "models/detail.html",
        entry=entry,
        versions=versions,
        aliases=studio.models.aliases(who, name),
        history=studio.models.alias_history(who, name),
        deployments=deployments,
    )


@router.post("/models/{name}/aliases")
async def move_alias(name: str, request: Request):  # type: ignore[no-untyped-def]
    form = await checked_form(request)
    version = form.get("version", "")
    if not version.isdigit():
        raise InvalidInputError("the version must be a positive integer")
    event = services(request).models.set_alias(principal(request), name, form.get("alias", "").strip(), int(version))
    flash(request, f"{name}@{event.alias} now points at version {event.to_version}" if event else "nothing changed")
    return RedirectResponse(f"/models/{name}#aliases", 303)


@router.post("/models/{name}/delete")
async def delete_model(name: str, request: Request):  # type: ignore[no-untyped-def]
    await checked_form(request)
    removed = services(request).models.delete(principal(request), name)
    flash(request, f"model '{name}' deleted ({removed} versions)")
    return RedirectResponse("/models", 303)


@router.get("/models/{name}/versions/{version}")
def version_detail(name: str, version: int, request: Request):  # type: ignore[no-untyped-def]
    studio, who = services(request), principal(request)
    entry = studio.models.get(who, name)
    model = studio.models.version(who, name, version)
    graph = studio.models.lineage(who, name, version)
    deployments = [d for d in studio.deployments.list(who) if d.model == name and d.version == version] if who else []
    return render(
        request,
        "models/version.html",
        entry=entry,
        model=model,
        files=studio.models.files(model),
        lineage=lineage_svg(graph),
        graph=graph,
        deployments=deployments,
        aliases=[a for a in studio.models.aliases(who, name) if a.version == version],
        example=studio.deployments.example_inputs(model),
    )
