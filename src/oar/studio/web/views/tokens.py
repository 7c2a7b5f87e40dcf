"""The caller's API tokens: create (shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from oar._core.errors import NotFoundError
from oar.studio.principal import require_user, services
from oar.studio.web.templating import checked_form, flash, render

router = APIRouter()


@router.get("/account/tokens")
def token_list(request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    return render(request, "tokens.html", tokens=services(request).accounts.tokens(who.id))


@router.post("/account/tokens")
async def create_token(request: Request):  # type: ignore[no-untyped-def]
    """The new token is in this response only: never in a cookie, a redirect or the session's stored data."""
    who = require_user(request)
    form = await checked_form(request)
    accounts = services(request).accounts
    new_token = accounts.issue_token(who.id, form.get("name", ""))
    return render(request, "tokens.html", code=201, tokens=accounts.tokens(who.id), new_token=new_token)


@router.post("/account/tokens/{token_id}/revoke")
async def revoke(token_id: str, request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    await checked_form(request)
    accounts = services(request).accounts
    if accounts.token_owner(token_id) != who.id and not who.is_admin:
        raise NotFoundError(f"no token '{token_id}'")
    accounts.revoke_token(token_id)
    flash(request, f"token {token_id} revoked")
    return RedirectResponse("/account/tokens", 303)
