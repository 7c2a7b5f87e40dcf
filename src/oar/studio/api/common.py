"""What every router shares: the caller, the services, and the page envelope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import AfterValidator, BaseModel

from oar.hub.catalog import MAX_PAGE
from oar.studio.principal import api_principal, services
from oar.studio.services import Services
from oar.studio.services.access import Principal

T = TypeVar("T")


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored in UTC); PostgreSQL, its session's zone: both become UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Timestamp = Annotated[datetime, AfterValidator(_utc)]
"""Every time in the API: RFC 3339 in UTC with a ``Z`` (``2026-12-06T02:12:36.645632Z``), whichever database."""

Caller = Annotated[Principal | None, Depends(api_principal)]
Studio = Annotated[Services, Depends(services)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")]
Offset = Annotated[int, Query(ge=0, description="how many matches to skip")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "sign in first, or a bad token"},
    403: {"description": "not allowed for this user"},
    404: {"description": "no such thing (or not visible to this user)"},
    422: {"description": "invalid input"},
}


class ErrorBody(BaseModel):
    status: int
    message: str


Cursor = Annotated[str | None, Query(max_length=500, description="the next_cursor of the previous page")]


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = None  # where a listing that pages by cursor goes on
    total_exact: bool = True  # false: ``total`` is a lower bound (a search counted up to a cap)


def page_out(page: Any, convert: Any) -> dict[str, Any]:
    return {
        "items": [convert(i) for i in page.items],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "next_cursor": getattr(page, "next_cursor", None),
        "total_exact": getattr(page, "total_exact", True),
    }
