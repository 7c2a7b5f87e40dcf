"""What every large listing needs: opaque cursors for keyset pages, and totals that never scan a table.

A cursor names the last item of a page (its sort key); the next page is "the items after that key",
read from an index in the listing order. Unlike an offset it costs the same on page 10 and page
10,000, and an item inserted meanwhile never shifts the rest: nothing is skipped or shown twice.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from oar._core.errors import InvalidInputError
from oar.hub.orm import CatalogCountRow

COUNT_CAP = 1_000  # a combination of filters is counted up to here, then "1,000+"


def encode_cursor(*key: Any) -> str:
    """The sort key of a page's last item, as a URL-safe token (datetimes in ISO 8601)."""
    parts = [{"t": k.isoformat()} if isinstance(k, datetime) else k for k in key]
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The key a cursor names, checked against the expected types; ``InvalidInputError`` if it is not one."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = tuple(datetime.fromisoformat(p["t"]) if t is datetime else p for p, t in zip(parts, types, strict=True))
    except (ValueError, TypeError, KeyError) as error:
        raise InvalidInputError("bad cursor: use the next_cursor of the previous page") from error
    if not all(isinstance(k, t) for k, t in zip(key, types, strict=True)):
        raise InvalidInputError("bad cursor: use the next_cursor of the previous page")
    return key


def counted(session: Session, key: str) -> int:
    """A total kept by the database's triggers (see ``CatalogCountRow``)."""
    return session.scalar(select(CatalogCountRow.n).where(CatalogCountRow.key == key)) or 0


def capped_count(session: Session, query: Select) -> tuple[int, bool]:
    """How many rows ``query`` matches, reading at most ``COUNT_CAP + 1`` of them; and whether that is exact."""
    n = session.scalar(select(func.count()).select_from(query.limit(COUNT_CAP + 1).subquery())) or 0
    return min(n, COUNT_CAP), n <= COUNT_CAP
