"""Who is calling: a bearer token, else the session cookie; CSRF is checked for cookie-borne writes.

Both the API and the pages resolve the caller here, once per request.
"""

from __future__ import annotations

from fastapi import Request

from oar._core.errors import ForbiddenError, UnauthorizedError
from oar.studio.security import new_csrf_token, same_secret
from oar.studio.services import Services
from oar.studio.services.access import Principal

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def services(request: Request) -> Services:
    return request.app.state.services


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use); every form and script write sends it back."""
    token = request.session.get("csrf")
    if not token:
        token = new_csrf_token()
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, sent: str | None) -> None:
    if not same_secret(request.session.get("csrf"), sent):
        raise ForbiddenError(
            "the form has expired or did not come from this studio (CSRF check failed); reload the page"
        )


def principal(request: Request) -> Principal | None:
    """The caller, or ``None`` for an anonymous visitor. A bad bearer token is a 401, not anonymous."""
    if hasattr(request.state, "principal"):
        return request.state.principal
    studio = services(request)
    header = request.headers.get("authorization")
    who: Principal | None = None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("use 'Authorization: Bearer <token>'")
        who = studio.accounts.verify_token(token.strip())
        if who is None:
            raise UnauthorizedError("the token is unknown, revoked or expired")
    else:
        user_id = request.session.get("uid")
        if isinstance(user_id, int):
            who = studio.accounts.active_principal(user_id)
            if who is None:
                request.session.clear()
    request.state.principal = who
    return who


def api_principal(request: Request) -> Principal | None:
    """For API routes: as :func:`principal`, plus the CSRF header on writes that ride on the session cookie."""
    who = principal(request)
    if who is not None and who.via == "session" and request.method not in SAFE_METHODS:
        check_csrf(request, request.headers.get(CSRF_HEADER))
    return who


def require_user(request: Request) -> Principal:
    who = principal(request)
    if who is None:
        raise UnauthorizedError("sign in first")
    return who
