"""The platform: model and dataset catalog (owner, visibility, tags), aliases and their audit log,
dataset sample rows, users, API tokens, one-time sign-in links and deployments.

Existing models and datasets get a catalog entry (no owner, private), so nothing registered before
is lost or exposed.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    _catalog()
    _aliases()
    _accounts()
    _deployments()
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("samples", sa.JSON, nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(80), nullable=True))
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_models_task", "models", ["task"])
    op.create_index("ix_models_created_at", "models", ["created_at"])
    _fill_catalog()


def _catalog() -> None:
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(80), nullable=True),
        sa.Column("visibility", sa.String(10), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("task", sa.String(60), nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_registered_models_owner", "registered_models", ["owner"])
    op.create_index("ix_registered_models_task", "registered_models", ["task"])
    op.create_index("ix_registered_models_updated_at", "registered_models", ["updated_at"])
    op.create_table(
        "model_tags",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_model_tags_tag", "model_tags", ["tag"])
    op.create_table(
        "registered_datasets",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(80), nullable=True),
        sa.Column("visibility", sa.String(10), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )


def _aliases() -> None:
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.String(80), nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(80), nullable=True),
        sa.Column("at", _TS, nullable=False),
    )
    op.create_index("ix_alias_events_name_alias", "alias_events", ["name", "alias"])
    op.create_index("ix_alias_events_at", "alias_events", ["at"])


def _accounts() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(80), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("last_used_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])


def _deployments() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("ref", sa.String(270), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("owner", sa.String(80), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=True),
        sa.Column("port", sa.Integer, nullable=True),
        sa.Column("token_id", sa.String(24), nullable=True),
        sa.Column("token_secret", sa.String(255), nullable=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_deployments_model", "deployments", ["model"])


def _fill_catalog() -> None:
    """A catalog entry for every model and dataset name registered before this revision."""
    bind = op.get_bind()
    now = datetime.now(UTC)
    models = sa.table(
        "models", sa.column("name"), sa.column("version", sa.Integer), sa.column("task"), sa.column("created_at", _TS)
    )
    rows = bind.execute(sa.select(models.c.name, models.c.version, models.c.task, models.c.created_at)).all()
    catalog: dict[str, dict] = {}
    for name, version, task, created in sorted(rows, key=lambda r: (r[0], r[1])):
        entry = catalog.setdefault(name, {"name": name, "created_at": created or now})
        entry.update(task=task, latest_version=version, updated_at=created or now)
    registered_models = sa.table(
        "registered_models",
        *(sa.column(c) for c in ("name", "owner", "visibility", "description", "task", "latest_version")),
        sa.column("created_at", _TS),
        sa.column("updated_at", _TS),
    )
    if catalog:
        defaults = {"owner": None, "visibility": "private", "description": ""}
        op.bulk_insert(registered_models, [{**defaults, **entry} for entry in catalog.values()])
    datasets = sa.table("datasets", sa.column("name"), sa.column("created_at", _TS))
    first = sa.func.min(datasets.c.created_at)
    names = bind.execute(sa.select(datasets.c.name, first).group_by(datasets.c.name)).all()
    registered_datasets = sa.table(
        "registered_datasets",
        *(sa.column(c) for c in ("name", "owner", "visibility")),
        sa.column("created_at", _TS),
        sa.column("updated_at", _TS),
    )
    if names:
        op.bulk_insert(
            registered_datasets,
            [
                {"name": n, "owner": None, "visibility": "private", "created_at": c or now, "updated_at": c or now}
                for n, c in names
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_models_created_at", "models")
    op.drop_index("ix_models_task", "models")
    op.drop_index("ix_runs_started_at", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("samples")
    for table in (
        "deployments",
        "api_tokens",
        "users",
        "alias_events",
        "model_aliases",
        "registered_datasets",
        "model_tags",
        "registered_models",
    ):
        op.drop_table(table)
