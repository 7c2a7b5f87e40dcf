"""Deployment pages: the list, deploy from a model's page, one deployment (endpoint, token, client snippet,
live figures, "try it"), undeploy."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from oar.studio.principal import require_user, services
from oar.studio.web.templating import checked_form, flash, render

router = APIRouter()


@router.get("/deployments")
def deployment_list(request: Request):  # type: ignore[no-untyped-def]
    return render(
        request, "deployments/list.html", deployments=services(request).deployments.list(require_user(request))
    )


@router.post("/deployments")
async def deploy(request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    form = await checked_form(request)
    replicas = form.get("replicas", "").strip() or None
    deployment = services(request).deployments.create(who, form.get("model", "").strip(), replicas)
    flash(request, f"deploying {deployment.ref}")
    return RedirectResponse(f"/deployments/{deployment.id}", 303)


@router.get("/deployments/{deployment_id}")
def deployment_detail(deployment_id: str, request: Request):  # type: ignore[no-untyped-def]
    studio, who = services(request), require_user(request)
    deployment = studio.deployments.get(who, deployment_id)
    try:
        token = studio.deployments.token(who, deployment_id)
    except Exception:  # not the owner: the page shows no token
        token = None
    model = studio.hub.models.get(deployment.model, deployment.version) if deployment.version else None
    return render(
        request,
        "deployments/detail.html",
        deployment=deployment,
        token=token,
        model=model,
        example=studio.deployments.example_inputs(model),
    )


@router.post("/deployments/{deployment_id}/delete")
async def undeploy(deployment_id: str, request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    await checked_form(request)
    services(request).deployments.delete(who, deployment_id)
    flash(request, f"deployment {deployment_id} stopped")
    return RedirectResponse("/deployments", 303)
