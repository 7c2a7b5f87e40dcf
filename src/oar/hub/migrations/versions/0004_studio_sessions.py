"""Studio sign-in sessions kept on the server: the cookie carries only a random id, the table its SHA-256,
so signing out, a password change, disabling a user or "sign out everywhere" ends every copy of a cookie.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "studio_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
    )
    op.create_index("ix_studio_sessions_user_id", "studio_sessions", ["user_id"])
    op.create_index("ix_studio_sessions_expires_at", "studio_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("studio_sessions")
