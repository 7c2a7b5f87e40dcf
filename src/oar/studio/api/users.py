"""/api/v1/users: accounts and roles (admins only)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from oar.studio.api.common import ERRORS, Caller, Studio, Timestamp
from oar.studio.services.access import require_admin
from oar.studio.services.accounts import User

router = APIRouter(prefix="/users", tags=["users"], responses={**ERRORS, 409: {"description": "name taken"}})
Role = Literal["admin", "organizer", "member", "viewer"]


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    disabled: bool
    has_password: bool
    created_at: Timestamp


class UserIn(BaseModel):
    username: str = Field(max_length=40)
    role: Role = "member"
    password: str | None = Field(None, max_length=1000)


class UserPatch(BaseModel):
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(None, max_length=1000)


def user_out(u: User) -> UserOut:
    return UserOut(
        id=u.id,
        username=u.username,
        role=u.role,
        disabled=u.disabled,
        has_password=u.has_password,
        created_at=u.created_at,
    )


@router.get("", response_model=list[UserOut])
def list_users(studio: Studio, who: Caller) -> list[UserOut]:
    require_admin(who)
    return [user_out(u) for u in studio.accounts.users()]


@router.post("", response_model=UserOut, status_code=201)
def create_user(body: UserIn, studio: Studio, who: Caller) -> UserOut:
    require_admin(who)
    return user_out(studio.accounts.create_user(body.username, body.role, body.password))


@router.patch("/{user_id}", response_model=UserOut)
def update_user(user_id: int, body: UserPatch, studio: Studio, who: Caller) -> UserOut:
    require_admin(who)
    return user_out(
        studio.accounts.update_user(user_id, role=body.role, disabled=body.disabled, password=body.password)
    )


@router.delete("/{user_id}/sessions")
def sign_out_everywhere(user_id: int, studio: Studio, who: Caller) -> dict[str, int]:
    """End every browser session of the user ("sign out everywhere"); API tokens stay until revoked."""
    require_admin(who)
    return {"ended": studio.accounts.sign_out_everywhere(user_id)}
