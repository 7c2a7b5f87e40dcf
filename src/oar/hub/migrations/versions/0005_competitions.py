"""Competitions and their submissions: the hidden split's sizes and dates, each submission's state,
public and private scores (the private one is served only after the end), its scoring job.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "competitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("dataset_name", sa.String(200), nullable=False),
        sa.Column("dataset_version", sa.Integer, nullable=False),
        sa.Column("test_size", sa.Integer, nullable=False),
        sa.Column("public_size", sa.Integer, nullable=False),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "competition_submissions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("competition_id", sa.Integer, sa.ForeignKey("competitions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("public_score", sa.Float, nullable=True),
        sa.Column("private_score", sa.Float, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("selected", sa.Boolean, nullable=False),
        sa.Column("submitted_at", _TS, nullable=False),
        sa.Column("scored_at", _TS, nullable=True),
    )
    for column in ("competition_id", "user", "status", "submitted_at"):
        op.create_index(f"ix_competition_submissions_{column}", "competition_submissions", [column])


def downgrade() -> None:
    op.drop_table("competition_submissions")
    op.drop_table("competitions")
