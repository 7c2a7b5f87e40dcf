"""Admin pages: users and their roles; a one-time sign-in link for a new user."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from oar.studio.principal import principal, services
from oar.studio.services.access import ROLES, require_admin
from oar.studio.web.templating import checked_form, flash, render

router = APIRouter()


@router.get("/admin/users")
def users(request: Request):  # type: ignore[no-untyped-def]
    require_admin(principal(request))
    return render(request, "admin/users.html", users=services(request).accounts.users(), roles=ROLES)


@router.post("/admin/users")
async def create_user(request: Request):  # type: ignore[no-untyped-def]
    """A new user's one-time sign-in link is in this response only, never in a cookie or stored session data."""
    require_admin(principal(request))
    form = await checked_form(request)
    studio = services(request)
    user = studio.accounts.create_user(
        form.get("username", "").strip(), form.get("role", "member"), form.get("password") or None
    )
    link = None
    if not user.has_password:
        link = f"{studio.config.base_url}/signin/link/{studio.accounts.sign_in_link_token(user.id)}"
    return render(
        request,
        "admin/users.html",
        code=201,
        users=studio.accounts.users(),
        roles=ROLES,
        link=link,
        created=f"user '{user.username}' created as {user.role}",
    )


@router.post("/admin/users/{user_id}")
async def update_user(user_id: int, request: Request):  # type: ignore[no-untyped-def]
    require_admin(principal(request))
    form = await checked_form(request)
    user = services(request).accounts.update_user(
        user_id, role=form.get("role") or None, disabled=form.get("disabled") == "on" if "active" in form else None
    )
    flash(request, f"user '{user.username}' is now {user.role}{' (disabled)' if user.disabled else ''}")
    return RedirectResponse("/admin/users", 303)


@router.post("/admin/users/{user_id}/signout")
async def sign_out_everywhere(user_id: int, request: Request):  # type: ignore[no-untyped-def]
    """End every browser session of one user (a lost laptop, a shared cookie)."""
    require_admin(principal(request))
    await checked_form(request)
    accounts = services(request).accounts
    ended = accounts.sign_out_everywhere(user_id)
    ended_text = f"{ended} session{'' if ended == 1 else 's'} ended"
    flash(request, f"user '{accounts.user(user_id).username}' signed out everywhere ({ended_text})")
    return RedirectResponse("/admin/users", 303)
