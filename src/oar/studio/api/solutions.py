"""/api/v1/solutions: the bundled recipes and the reports of recipe runs on this hub (signed-in users)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from oar._core.errors import UnauthorizedError
from oar.studio.api.common import ERRORS, Caller, Studio

router = APIRouter(prefix="/solutions", tags=["solutions"], responses=ERRORS)


class SolutionsOut(BaseModel):
    recipes: list[dict[str, Any]]
    reports: list[dict[str, Any]]


@router.get("", response_model=SolutionsOut)
def list_solutions(studio: Studio, who: Caller) -> SolutionsOut:
    if who is None:
        raise UnauthorizedError("sign in first")
    return SolutionsOut(
        recipes=[asdict(r) for r in studio.solutions.recipes()],
        reports=[asdict(r) for r in studio.solutions.reports()],
    )
