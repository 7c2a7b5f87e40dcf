"""The REST API under /api/v1: one router per resource, each a thin layer over ``studio.services``."""

from __future__ import annotations

from fastapi import APIRouter

from oar.studio.api import (
    auth,
    competitions,
    datasets,
    deployments,
    jobs,
    models,
    notebooks,
    runs,
    solutions,
    storage,
    tokens,
    users,
)

API_PREFIX = "/api/v1"
RESOURCES = (
    auth,
    datasets,
    models,
    runs,
    jobs,
    deployments,
    competitions,
    notebooks,
    solutions,
    storage,
    users,
    tokens,
)


def api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    for module in RESOURCES:
        router.include_router(module.router)
    return router
