"""Users, their passwords, API tokens and one-time sign-in links.

Passwords and token secrets are stored only as Argon2 hashes. Verifying a hash is slow on purpose,
so a verified token is remembered in memory (by a SHA-256 fingerprint) for a short while.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.orm import Session, sessionmaker

from oar._core.errors import ConflictError, InvalidInputError, NotFoundError
from oar.studio.orm import ApiTokenRow, UserRow
from oar.studio.security import SecretHasher, fingerprint, new_token, split_token
from oar.studio.services.access import ROLES, Principal
from oar.studio.services.browser_sessions import BrowserSessions

log = logging.getLogger("oar.studio.accounts")
USERNAME = re.compile(r"[a-z][a-z0-9_.-]{1,39}")
MIN_PASSWORD = 8
SIGN_IN_LINK_TTL = timedelta(hours=24)
_TOKEN_CACHE_TTL = 30.0


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    disabled: bool
    has_password: bool
    created_at: datetime

    def principal(self, via: str = "session") -> Principal:
        return Principal(self.id, self.username, self.role, via)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    username: str
    created_at: datetime
    last_used_at: datetime | None


class AccountService:
    def __init__(
        self, sessions: sessionmaker[Session], hasher: SecretHasher, browser_sessions: BrowserSessions
    ) -> None:
        self._sessions = sessions
        self._hasher = hasher
        self.browser_sessions = browser_sessions
        self._verified: dict[str, tuple[float, Principal, str]] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[User], None]] = []

    def on_user_change(self, listener: Callable[[User], None]) -> None:
        """Call ``listener(user)`` after each change of a user's role or disabled flag, so rooms that
        keep something running for a user (a notebook server) take it away at once, not later."""
        self._listeners.append(listener)

    # --- users -----------------------------------------------------------------------------------
    def create_user(self, username: str, role: str, password: str | None = None) -> User:
        if not USERNAME.fullmatch(username):
            raise InvalidInputError(
                f"bad username '{username}': 2-40 lowercase letters, digits, '.', '_' or '-', a letter first"
            )
        if role not in ROLES:
            raise InvalidInputError(f"bad role '{role}': use one of {', '.join(ROLES)}")
        row = UserRow(username=username, role=role, disabled=False, password_hash=self._password_hash(password))
        with self._sessions() as session:
            session.add(row)
            try:
                session.commit()
            except SqlIntegrityError as exc:
                raise ConflictError(f"user '{username}' already exists") from exc
            return _user(row)

    def count_users(self) -> int:
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(UserRow)) or 0

    def users(self) -> list[User]:
        with self._sessions() as session:
            return [_user(r) for r in session.scalars(select(UserRow).order_by(UserRow.username))]

    def user(self, user_id: int) -> User:
        with self._sessions() as session:
            row = session.get(UserRow, user_id)
            if row is None:
                raise NotFoundError(f"no user with id {user_id}")
            return _user(row)

    def by_name(self, username: str) -> User:
        with self._sessions() as session:
            row = session.scalar(select(UserRow).where(UserRow.username == username))
            if row is None:
                raise NotFoundError(f"no user '{username}'")
            return _user(row)

    def update_user(
        self, user_id: int, *, role: str | None = None, disabled: bool | None = None, password: str | None = None
    ) -> User:
        if role is not None and role not in ROLES:
            raise InvalidInputError(f"bad role '{role}': use one of {', '.join(ROLES)}")
        with self._sessions() as session:
            row = session.get(UserRow, user_id)
            if row is None:
                raise NotFoundError(f"no user with id {user_id}")
            if role is not None:
                row.role = role
            if disabled is not None:
                row.disabled = disabled
            if password is not None:
                row.password_hash = self._password_hash(password)
            session.commit()
            self._forget_tokens()
            user = _user(row)
        if password is not None or disabled:  # every browser signed in as this user must sign in again
            self.browser_sessions.end_all(user_id)
        if role is not None or disabled is not None:
            for listener in self._listeners:
                try:
                    listener(user)
                except Exception:  # one room's failure must not undo the change itself
                    log.exception("after the change of user %s", user.username)
        return user

    def change_password(self, user_id: int, current: str, new: str, *, need_current: bool = True) -> User:
        """A user's own password change: the current password first (unless the account has none, or the
        browser came in through a one-time link); every other session of the user ends."""
        with self._sessions() as session:
            row = session.get(UserRow, user_id)
            if row is None:
                raise NotFoundError(f"no user with id {user_id}")
            stored = row.password_hash
        if need_current and stored and not self._hasher.verify(stored, current):
            raise InvalidInputError("the current password is wrong")
        return self.update_user(user_id, password=new)

    def sign_out_everywhere(self, user_id: int) -> int:
        """End every browser session of ``user_id`` (API tokens are revoked one by one, on the tokens page)."""
        self.user(user_id)
        return self.browser_sessions.end_all(user_id)

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The user if the password matches and the account is active; ``None`` otherwise."""
        with self._sessions() as session:
            row = session.scalar(select(UserRow).where(UserRow.username == username))
        if row is None or row.disabled or not row.password_hash:
            self._hasher.hash(password)  # the same work either way: timing does not tell which names exist
            return None
        if not self._hasher.verify(row.password_hash, password):
            return None
        if self._hasher.weaker_than_configured(row.password_hash):
            self._rehash(row.id, password)
        return _user(row).principal()

    def _rehash(self, user_id: int, password: str) -> None:
        with self._sessions() as session:
            row = session.get(UserRow, user_id)
            if row is not None:
                row.password_hash = self._hasher.hash(password)
                session.commit()

    def active_principal(self, user_id: int, via: str = "session") -> Principal | None:
        """The principal of a session's user, if that user still exists and is enabled."""
        with self._sessions() as session:
            row = session.get(UserRow, user_id)
            return None if row is None or row.disabled else Principal(row.id, row.username, row.role, via)

    # --- tokens ----------------------------------------------------------------------------------
    def issue_token(self, user_id: int, name: str, purpose: str = "api", ttl: timedelta | None = None) -> str:
        """A new token for ``user_id``; the only time its plain text exists is this return value."""
        if not name.strip() or len(name) > 100:
            raise InvalidInputError("a token needs a name of 1-100 characters")
        token_id, secret, token = new_token()
        expires = datetime.now(UTC) + ttl if ttl else None
        row = ApiTokenRow(
            id=token_id,
            user_id=user_id,
            name=name.strip(),
            secret_hash=self._hasher.hash(secret),
            purpose=purpose,
            expires_at=expires,
        )
        with self._sessions() as session:
            session.add(row)
            session.commit()
        return token

    def verify_token(self, token: str, purpose: str = "api") -> Principal | None:
        parts = split_token(token)
        if parts is None:
            return None
        key = fingerprint(token)
        with self._lock:
            cached = self._verified.get(key)
        if cached and cached[0] > time.monotonic() and cached[2] == purpose:
            return cached[1]
        token_id, secret = parts
        with self._sessions() as session:
            row = session.get(ApiTokenRow, token_id)
            if row is None or row.revoked_at is not None or row.purpose != purpose:
                return None
            if row.expires_at is not None and _aware(row.expires_at) < datetime.now(UTC):
                return None
            if not self._hasher.verify(row.secret_hash, secret):
                return None
            user = session.get(UserRow, row.user_id)
            if user is None or user.disabled:
                return None
            row.last_used_at = datetime.now(UTC)
            session.commit()
            principal = Principal(user.id, user.username, user.role, "token")
        if purpose == "api":
            with self._lock:
                self._verified[key] = (time.monotonic() + _TOKEN_CACHE_TTL, principal, purpose)
        return principal

    def tokens(self, user_id: int | None = None) -> list[TokenInfo]:
        """Live API tokens of one user (every user's when ``None``)."""
        query = (
            select(ApiTokenRow, UserRow.username)
            .join(UserRow, UserRow.id == ApiTokenRow.user_id)
            .where(ApiTokenRow.revoked_at.is_(None), ApiTokenRow.purpose == "api")
        )
        if user_id is not None:
            query = query.where(ApiTokenRow.user_id == user_id)
        with self._sessions() as session:
            rows = session.execute(query.order_by(ApiTokenRow.created_at.desc())).all()
            return [TokenInfo(r.id, r.name, u, r.created_at, r.last_used_at) for r, u in rows]

    def token_owner(self, token_id: str) -> int:
        with self._sessions() as session:
            row = session.get(ApiTokenRow, token_id)
            if row is None or row.revoked_at is not None:
                raise NotFoundError(f"no token '{token_id}'")
            return row.user_id

    def revoke_token(self, token_id: str) -> None:
        with self._sessions() as session:
            row = session.get(ApiTokenRow, token_id)
            if row is None or row.revoked_at is not None:
                raise NotFoundError(f"no token '{token_id}'")
            row.revoked_at = datetime.now(UTC)
            session.commit()
        self._forget_tokens()

    # --- one-time sign-in links ------------------------------------------------------------------
    def sign_in_link_token(self, user_id: int) -> str:
        return self.issue_token(user_id, "one-time sign-in link", purpose="sign-in", ttl=SIGN_IN_LINK_TTL)

    def reset_sign_in_link(self, user_id: int) -> str:
        """A fresh one-time link for a user who lost theirs: every unused older link stops working."""
        now = datetime.now(UTC)
        with self._sessions() as session:
            live = select(ApiTokenRow).where(
                ApiTokenRow.user_id == user_id, ApiTokenRow.purpose == "sign-in", ApiTokenRow.revoked_at.is_(None)
            )
            for row in session.scalars(live):
                row.revoked_at = now
            session.commit()
        self._forget_tokens()
        return self.sign_in_link_token(user_id)

    def redeem_sign_in_link(self, token: str) -> Principal | None:
        """Sign in with a one-time link: it works once, then it is revoked."""
        principal = self.verify_token(token, purpose="sign-in")
        if principal is not None:
            token_id, _ = split_token(token)  # type: ignore[misc]
            self.revoke_token(token_id)
        return principal

    def _password_hash(self, password: str | None) -> str | None:
        if password is None:
            return None
        if len(password) < MIN_PASSWORD:
            raise InvalidInputError(f"the password must have at least {MIN_PASSWORD} characters")
        return self._hasher.hash(password)

    def _forget_tokens(self) -> None:
        with self._lock:
            self._verified.clear()


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _user(row: UserRow) -> User:
    return User(row.id, row.username, row.role, row.disabled, row.password_hash is not None, row.created_at)
