"""The job queue (``oar.jobs``): jobs, their state changes, attempts, and the nodes of local pools.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    _jobs()
    _job_events()
    _job_attempts()
    _job_nodes()


def downgrade() -> None:
    for table in ("job_nodes", "job_attempts", "job_events", "jobs"):
        op.drop_table(table)


def _jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("user", sa.String(100), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("pool", sa.String(60), nullable=False),
        sa.Column("current_pool", sa.String(60), nullable=False),
        sa.Column("workers_min", sa.Integer, nullable=False),
        sa.Column("workers_max", sa.Integer, nullable=False),
        sa.Column("cpus", sa.Integer, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("preemptions", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("cluster", sa.String(200), nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("deadline", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
    )
    for column in ("user", "state", "run_id"):
        op.create_index(f"ix_jobs_{column}", "jobs", [column])


def _job_events() -> None:
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])


def _job_attempts() -> None:
    op.create_table(
        "job_attempts",
        sa.Column("id", sa.String(60), primary_key=True),
        sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("pool", sa.String(60), nullable=False),
        sa.Column("nodes", sa.JSON, nullable=False),
        sa.Column("workers", sa.Integer, nullable=False),
        sa.Column("cpus", sa.Integer, nullable=False),
        sa.Column("node_share", sa.Float, nullable=False),
        sa.Column("price_per_hour", sa.Float, nullable=False),
        sa.Column("handle", sa.JSON, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("start_step", sa.Integer, nullable=False),
        sa.Column("last_step", sa.Integer, nullable=False),
        sa.Column("checkpoint_step", sa.Integer, nullable=False),
        sa.Column("steps_redone", sa.Integer, nullable=False),
        sa.Column("checkpoint_seconds", sa.Float, nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.UniqueConstraint("job_id", "number"),
    )
    op.create_index("ix_job_attempts_job_id", "job_attempts", ["job_id"])


def _job_nodes() -> None:
    op.create_table(
        "job_nodes",
        sa.Column("id", sa.String(60), primary_key=True),
        sa.Column("pool", sa.String(60), nullable=False),
        sa.Column("cpus", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("notice_at", _TS, nullable=True),
        sa.Column("gone_at", _TS, nullable=True),
    )
    op.create_index("ix_job_nodes_pool", "job_nodes", ["pool"])
