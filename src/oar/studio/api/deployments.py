"""/api/v1/deployments: deploy ``name@alias`` or ``name:version`` as a supervised ``oar serve``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from oar.studio.api.common import ERRORS, Caller, Studio, Timestamp
from oar.studio.services.deployments import Deployment

router = APIRouter(prefix="/deployments", tags=["deployments"], responses=ERRORS)


class DeploymentIn(BaseModel):
    model: str = Field(max_length=270, description="name@alias, name:version or name (its latest version)")
    replicas: int | list[int] | None = Field(
        None, description="N, or [min, max] to autoscale between them; above one: replicas behind one balancer"
    )


class DeploymentOut(BaseModel):
    id: str
    model: str
    ref: str
    version: int | None
    owner: str | None
    status: str
    endpoint: str | None
    message: str
    created_at: Timestamp
    updated_at: Timestamp
    replicas: list[int] | None = None


class PredictIn(BaseModel):
    inputs: dict[str, Any] = Field(description="input name -> list of values, as ModelClient.predict takes them")


def deployment_out(d: Deployment) -> DeploymentOut:
    return DeploymentOut(**d.__dict__)


@router.get("", response_model=list[DeploymentOut])
def list_deployments(studio: Studio, who: Caller) -> list[DeploymentOut]:
    return [deployment_out(d) for d in studio.deployments.list(who)]


@router.post("", response_model=DeploymentOut, status_code=201)
def create_deployment(body: DeploymentIn, studio: Studio, who: Caller) -> DeploymentOut:
    return deployment_out(studio.deployments.create(who, body.model, body.replicas))


@router.get("/{deployment_id}", response_model=DeploymentOut)
def get_deployment(deployment_id: str, studio: Studio, who: Caller) -> DeploymentOut:
    return deployment_out(studio.deployments.get(who, deployment_id))


@router.get("/{deployment_id}/token")
def deployment_token(deployment_id: str, studio: Studio, who: Caller) -> dict[str, str]:
    """The endpoint's bearer token (owner or admin)."""
    return {"token": studio.deployments.token(who, deployment_id)}


@router.get("/{deployment_id}/figures")
def figures(deployment_id: str, studio: Studio, who: Caller) -> dict[str, Any]:
    """Live figures from the server's Prometheus metrics: req/s, p50/p99 latency, errors; with replicas, also
    each replica's node, req/s, p99 and CPU under ``replicas``."""
    return studio.deployments.figures(who, deployment_id)


@router.post("/{deployment_id}/predict")
def predict(deployment_id: str, body: PredictIn, studio: Studio, who: Caller) -> dict[str, Any]:
    """Call the deployed endpoint through the studio (the pages' "try it" box)."""
    return studio.deployments.predict(who, deployment_id, body.inputs)


@router.delete("/{deployment_id}", status_code=204)
def undeploy(deployment_id: str, studio: Studio, who: Caller) -> Response:
    studio.deployments.delete(who, deployment_id)
    return Response(status_code=204)
