"""Signed-in browsers, kept on the server so that they can be ended.

A browser holds only a random id (in the ``oar_session`` cookie); the table keys each session by the id's
SHA-256, so a leaked copy of the table signs nobody in. Ending a row ends every copy of its cookie: sign-out,
a password change, disabling a user and an admin's "sign out everywhere" all come down to deleting rows.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from oar.studio.orm import SessionRow

SESSION_LIFETIME = timedelta(days=14)


class BrowserSessions:
    """Start, load, save and end sign-in sessions; expired ones are refused and deleted."""

    def __init__(self, sessions: sessionmaker[Session], lifetime: timedelta = SESSION_LIFETIME) -> None:
        self._sessions = sessions
        self.lifetime = lifetime

    def start(self, user_id: int, data: dict[str, Any]) -> str:
        """A new session for ``user_id``; returns the id for the cookie (its only plain-text copy)."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self._sessions() as db:
            db.execute(delete(SessionRow).where(SessionRow.expires_at < now))
            db.add(SessionRow(id_hash=_digest(session_id), user_id=user_id, data=data, expires_at=now + self.lifetime))
            db.commit()
        return session_id

    def load(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        """(user id, data) of a live session; ``None`` for an unknown, ended or expired one."""
        with self._sessions() as db:
            row = db.get(SessionRow, _digest(session_id))
            if row is None:
                return None
            if _aware(row.expires_at) <= datetime.now(UTC):
                db.delete(row)
                db.commit()
                return None
            return row.user_id, dict(row.data or {})

    def save(self, session_id: str, data: dict[str, Any]) -> None:
        with self._sessions() as db:
            row = db.get(SessionRow, _digest(session_id))
            if row is not None:
                row.data = data
                db.commit()

    def end(self, session_id: str) -> None:
        with self._sessions() as db:
            db.execute(delete(SessionRow).where(SessionRow.id_hash == _digest(session_id)))
            db.commit()

    def end_all(self, user_id: int) -> int:
        """Sign ``user_id`` out everywhere; returns how many sessions ended."""
        with self._sessions() as db:
            ended = db.execute(delete(SessionRow).where(SessionRow.user_id == user_id)).rowcount
            db.commit()
            return ended or 0

    def count(self, user_id: int) -> int:
        with self._sessions() as db:
            query = select(func.count()).select_from(SessionRow).where(SessionRow.user_id == user_id)
            return db.scalar(query.where(SessionRow.expires_at > datetime.now(UTC))) or 0


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
