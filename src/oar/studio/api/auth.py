"""Who am I, and signing in for a token (``oar login``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from oar._core.errors import UnauthorizedError
from oar.studio.api.common import ERRORS, Caller, Studio
from oar.studio.services.access import require_signed_in

router = APIRouter(tags=["auth"], responses=ERRORS)


class MeOut(BaseModel):
    id: int
    username: str
    role: str


class LoginIn(BaseModel):
    username: str = Field(max_length=80)
    password: str = Field(max_length=1000)
    token_name: str = Field("oar login", max_length=100)


class TokenOut(BaseModel):
    id: str
    token: str = Field(description="shown only in this response; stored as an Argon2 hash")


@router.get("/me", response_model=MeOut)
def me(who: Caller) -> MeOut:
    user = require_signed_in(who)
    return MeOut(id=user.id, username=user.username, role=user.role)


@router.post("/auth/token", response_model=TokenOut, status_code=201)
def login_for_token(body: LoginIn, request: Request, studio: Studio) -> TokenOut:
    """Trade a username and password for a new API token (rate-limited like the sign-in page)."""
    address = request.client.host if request.client else "?"
    studio.signin_limiter.check(address, body.username)
    who = studio.accounts.authenticate(body.username, body.password)
    if who is None:
        studio.signin_limiter.failed(address, body.username)
        raise UnauthorizedError("wrong username or password")
    studio.signin_limiter.succeeded(address, body.username)
    token = studio.accounts.issue_token(who.id, body.token_name)
    return TokenOut(id=token[4:16], token=token)


@router.get("/health", tags=["meta"])
def health() -> dict[str, str]:
    return {"status": "ok"}
