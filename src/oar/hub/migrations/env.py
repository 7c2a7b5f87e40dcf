"""Alembic environment: the connection is handed in by :func:`oar.hub.schema.migrate` (or built from the URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from oar.hub.orm import outside_metadata

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=lambda name, _type, _parents: not outside_metadata(name),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # the `alembic` command line with sqlalchemy.url set
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
