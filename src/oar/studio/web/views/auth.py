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


def _start_session(request: Request, who: Principal) -> None:
    request.session.clear()
    request.session.update(uid=who.id, csrf=new_csrf_token())


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
    _start_session(request, who)
    flash(request, "Signed in. Set a password so that you can sign in again.")
    return RedirectResponse("/account/password", 303)


@router.get("/account/password")
def password_page(request: Request):  # type: ignore[no-untyped-def]
    require_user(request)
    return render(request, "password.html")


@router.post("/account/password")
async def set_password(request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    form = await checked_form(request)
    if form.get("password") != form.get("confirm"):
        return render(request, "password.html", code=422, error="the two passwords differ")
    try:
        services(request).accounts.update_user(who.id, password=form.get("password", ""))
    except OarError as exc:
        return render(request, "password.html", code=422, error=str(exc))
    flash(request, "Password saved.")
    return RedirectResponse("/", 303)


@router.post("/signout")
async def signout(request: Request):  # type: ignore[no-untyped-def]
    await checked_form(request)
    request.session.clear()
    return RedirectResponse("/signin", 303)
