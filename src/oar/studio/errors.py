"""One way to fail: JSON ``{"error": {"status", "message"}}`` under /api, an HTML page elsewhere.

An error oar raises on purpose (an :class:`OarError`) keeps its message, whatever its status: "deployment 'x' is
not ready" is for the user to read. Only unexpected errors are logged here and answered with a plain 500, so no
stack trace ever reaches a user. 503 and 429 carry ``Retry-After``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from oar._core.errors import OarError

log = logging.getLogger("oar.studio")

_TITLES = {
    400: "Bad request",
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    429: "Too many attempts",
    500: "Server error",
    503: "Unavailable",
}

_RETRY_AFTER = {429: "60", 503: "5"}  # seconds: the sign-in limit's window; a deployment still starting


def install(app: FastAPI) -> None:
    app.add_exception_handler(OarError, _oar_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


def error_response(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": {"status": status, "message": message}}, status, headers=headers)
    from oar.studio.web.templating import render_error

    return render_error(request, status, _TITLES.get(status, "Error"), message, headers)


async def _oar_error(request: Request, exc: OarError) -> Response:
    status = exc.http_status if 400 <= exc.http_status < 600 else 500
    if status == 400:  # well-formed but unacceptable input: the same status as a failed validation
        status = 422
    if status == 401 and not _wants_json(request):
        from fastapi.responses import RedirectResponse

        return RedirectResponse(f"/signin?next={request.url.path}", 303)
    retry_after = _RETRY_AFTER.get(status)
    headers = {"Retry-After": retry_after} if retry_after else None
    return error_response(request, status, str(exc) or _TITLES.get(status, "error"), headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    message = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "error")
    if exc.status_code == 404 and message == "Not Found":
        message = f"nothing at {request.url.path}"
    return error_response(request, exc.status_code, message, getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body",))
        problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg")))
    return error_response(request, 422, "; ".join(problems) or "invalid input")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "internal error; the studio's log has the details")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")[:40]
