"""The studio's tables: accounts, API tokens, sign-in sessions and deployments. They share the hub's metadata and its
migrations (``oar/hub/migrations``), so one database holds the whole platform."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from oar.hub.orm import Base


def _now() -> datetime:
    return datetime.now(UTC)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)  # None: no password set yet
    role: Mapped[str] = mapped_column(String(20))  # admin | member | viewer
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ApiTokenRow(Base):
    """A bearer token (``oar_<id>_<secret>``): only the Argon2 hash of the secret is stored.

    ``purpose`` is ``api`` for tokens a user creates, ``sign-in`` for a one-time sign-in link.
    """

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(20), default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SessionRow(Base):
    """A signed-in browser. The cookie holds a random id; only its SHA-256 is stored, so the table cannot
    be replayed as cookies. Deleting the row ends the session everywhere a copy of the cookie lives."""

    __tablename__ = "studio_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # CSRF token, a flash message
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class DeploymentRow(Base):
    """A model served by a supervised ``oar serve``; the row is the state that survives a studio restart."""

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), index=True)
    ref: Mapped[str] = mapped_column(String(270))  # what was asked for: name@alias or name:version
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the version serving now
    owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # starting | running | failed | stopped
    endpoint: Mapped[str | None] = mapped_column(String(200), nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token_id: Mapped[str | None] = mapped_column(String(24), nullable=True)
    token_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the supervisor's own state
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class TutorialProgressRow(Base):
    """A tutorial of the learning path that a user ran to its last cell (the cell reports it)."""

    __tablename__ = "tutorial_progress"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    tutorial: Mapped[str] = mapped_column(String(80), primary_key=True)
    done_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
