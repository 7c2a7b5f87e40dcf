"""Rendering pages: one Jinja2 environment (autoescaped), the caller and CSRF token in every template."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from oar.studio.principal import CSRF_FIELD, check_csrf, csrf_token, principal

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: Any) -> str:
    """Metrics and parity gaps: whole numbers without decimals (``13891``), tiny ones in significant digits
    (``2.4e-06``, not ``0.0000``), the rest with four decimals."""
    if not isinstance(value, float):
        return "-" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.6g}"


def _literal(value: Any) -> str:
    """A value as JSON with its real characters (``"这个"``, not ``"\\u8fd9\\u4e2a"``): copy-pastable into Python
    and JSON alike. Autoescaping still applies where it is shown."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _dollars(value: float | None) -> str:
    """Job costs are often fractions of a cent: enough digits to tell them apart."""
    if value is None:
        return "-"
    return f"${value:.2f}" if value >= 100 else f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f} s"


def _filesize(value: int | None) -> str:
    """Bytes for people: ``512 B``, ``3.4 KiB``, ``1.2 GiB``."""
    size = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _json_block(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block: safe against ``</script>`` in the data."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


TEMPLATES.env.filters.update(
    when=_when,
    number=_number,
    filesize=_filesize,
    json_block=_json_block,
    dollars=_dollars,
    duration=_duration,
    literal=_literal,
)
TEMPLATES.env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)


def render(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    try:
        who = principal(request)
    except Exception:  # a bad token on a page: show the page as anonymous
        who = None
    context.update(
        request=request,
        who=who,
        csrf=csrf_token(request),
        csrf_field=CSRF_FIELD,
        flash=request.session.pop("flash", None),
    )
    return TEMPLATES.TemplateResponse(request, template, context, status_code=code)


def render_error(
    request: Request, status: int, title: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    response = render(request, "error.html", code=status, title=title, message=message)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


async def checked_form(request: Request) -> dict[str, str]:
    """The posted form, after its CSRF token is checked (every state-changing form goes through here)."""
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


def flash(request: Request, message: str) -> None:
    request.session["flash"] = message
