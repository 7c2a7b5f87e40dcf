"""/api/v1/tokens: a user's API tokens. The token text is in the create response only."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from oar._core.errors import NotFoundError
from oar.studio.api.common import ERRORS, Caller, Studio, Timestamp
from oar.studio.services.access import require_signed_in

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=ERRORS)


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class TokenOut(BaseModel):
    id: str
    name: str
    username: str
    created_at: Timestamp
    last_used_at: Timestamp | None


class NewTokenOut(BaseModel):
    id: str
    name: str
    token: str = Field(description="shown only in this response; stored as an Argon2 hash")


@router.get("", response_model=list[TokenOut])
def list_tokens(studio: Studio, who: Caller) -> list[TokenOut]:
    user = require_signed_in(who)
    return [TokenOut(**t.__dict__) for t in studio.accounts.tokens(None if user.is_admin else user.id)]


@router.post("", response_model=NewTokenOut, status_code=201)
def create_token(body: TokenIn, studio: Studio, who: Caller) -> NewTokenOut:
    user = require_signed_in(who)
    token = studio.accounts.issue_token(user.id, body.name)
    return NewTokenOut(id=token[4:16], name=body.name, token=token)


@router.delete("/{token_id}", status_code=204)
def revoke_token(token_id: str, studio: Studio, who: Caller) -> Response:
    user = require_signed_in(who)
    if studio.accounts.token_owner(token_id) != user.id and not user.is_admin:
        raise NotFoundError(f"no token '{token_id}'")
    studio.accounts.revoke_token(token_id)
    return Response(status_code=204)
