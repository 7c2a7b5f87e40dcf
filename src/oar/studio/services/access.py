"""Who may do what: roles (admin, member, viewer), ownership and visibility, in one place.

Services call these checks; routes and views never decide access themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from oar._core.errors import ForbiddenError, NotFoundError, UnauthorizedError

ROLES = ("admin", "organizer", "member", "viewer")  # an organizer is a member who may also run competitions


@dataclass(frozen=True)
class Principal:
    """The signed-in user behind a request; ``None`` stands for an anonymous visitor."""

    id: int
    username: str
    role: str
    via: str = "session"  # session | token

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_create(self) -> bool:
        return self.role in ("admin", "organizer", "member")

    @property
    def can_organize(self) -> bool:
        """Creates competitions (admins, and members granted the organizer role)."""
        return self.role in ("admin", "organizer")


def require_signed_in(who: Principal | None) -> Principal:
    if who is None:
        raise UnauthorizedError("sign in first (a session, or 'Authorization: Bearer <token>')")
    return who


def require_admin(who: Principal | None) -> Principal:
    who = require_signed_in(who)
    if not who.is_admin:
        raise ForbiddenError("only an admin can do this")
    return who


def require_creator(who: Principal | None, action: str) -> Principal:
    """Members and admins create things; viewers only look."""
    who = require_signed_in(who)
    if not who.can_create:
        raise ForbiddenError(f"a viewer cannot {action}; ask an admin for the member role")
    return who


def require_owner(who: Principal | None, owner: str | None, what: str) -> Principal:
    """Admins manage everything; a member manages only what they own."""
    who = require_signed_in(who)
    if who.is_admin:
        return who
    if not who.can_create or owner is None or owner != who.username:
        raise ForbiddenError(f"only the owner ({owner or 'none: admins only'}) of {what} or an admin can do this")
    return who


def require_visible(who: Principal | None, visibility: str, kind: str, name: str) -> None:
    """Private things exist only for signed-in users: anonymous visitors get "not found", not a hint."""
    if visibility != "public" and who is None:
        raise NotFoundError(f"no {kind} '{name}'")
