"""Sign in (password, rate-limited; or a one-time link), set a password, sign out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from oar._core.errors import OarError
from oar.studio.principal import require_user, services
from oar.studio.security import new_csrf_token
from oar.studio.services.access import Principal
from oar.studio.web.templating import checked_form, flash, render

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


def _start_session(request: Request, who: Principal, via_link: bool = False) -> None:
    """A fresh server-side session (a new id: a cookie planted before sign-in is worthless)."""
    request.session.clear()
    request.session.update(uid=who.id, csrf=new_csrf_token())
    if via_link:  # the link stands in for the password: setting one here needs no current password
        request.session["link"] = True


@router.get("/signin")
def signin_page(request: Request, next: str = "/"):  # type: ignore[no-untyped-def]
    return render(request, "signin.html", next=_safe_next(next))


@router.post("/signin")
async def signin(request: Request):  # type: ignore[no-untyped-def]
    form = await checked_form(request)
    studio = services(request)
    username, password = form.get("username", "").strip(), form.get("password", "")
    address = request.client.host if request.client else "?"
    try:
        studio.signin_limiter.check(address, username)
    except OarError as exc:
        return render(request, "signin.html", code=429, error=str(exc), next=_safe_next(form.get("next")))
    who = studio.accounts.authenticate(username, password)
    if who is None:
        studio.signin_limiter.failed(address, username)
        return render(
            request,
            "signin.html",
            code=401,
            error="wrong username or password",
            next=_safe_next(form.get("next")),
            username=username,
        )
    studio.signin_limiter.succeeded(address, username)
    _start_session(request, who)
    return RedirectResponse(_safe_next(form.get("next")), 303)


@router.get("/signin/link/{token}")
def signin_link(token: str, request: Request):  # type: ignore[no-untyped-def]
    """A one-time sign-in link (the first admin's): it works once, then asks for a password."""
    who = services(request).accounts.redeem_sign_in_link(token)
    if who is None:
        return render(
            request,
            "error.html",
            code=401,
            title="Link not valid",
            message="this sign-in link was already used or has expired; ask an admin for a new one",
        )
    _start_session(request, who, via_link=True)
    flash(request, "Signed in. Set a password so that you can sign in again.")
    return RedirectResponse("/account/password", 303)


def _needs_current(request: Request, who: Principal) -> bool:
    return not request.session.get("link") and services(request).accounts.user(who.id).has_password


@router.get("/account/password")
def password_page(request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    return render(request, "password.html", need_current=_needs_current(request, who))


@router.post("/account/password")
async def set_password(request: Request):  # type: ignore[no-untyped-def]
    """Change the password: every session of the user ends, and this browser gets a fresh one."""
    who = require_user(request)
    form = await checked_form(request)
    need_current = _needs_current(request, who)
    if form.get("password") != form.get("confirm"):
        return render(request, "password.html", code=422, error="the two passwords differ", need_current=need_current)
    try:
        services(request).accounts.change_password(
            who.id, form.get("current", ""), form.get("password", ""), need_current=need_current
        )
    except OarError as exc:
        return render(request, "password.html", code=422, error=str(exc), need_current=need_current)
    _start_session(request, who)
    flash(request, "Password saved; every other browser is signed out.")
    return RedirectResponse("/", 303)


@router.post("/signout")
async def signout(request: Request):  # type: ignore[no-untyped-def]
    await checked_form(request)
    request.session.clear()
    return RedirectResponse("/signin", 303)
