"""Bring a hub database to the current schema with Alembic, in place.

The migrations ship inside the package (``oar/hub/migrations``). A database made by a release
before migrations (tables from ``create_all``, no ``alembic_version``) is stamped at the baseline
revision, which is exactly that schema, and upgraded from there: nothing is dropped or rebuilt.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from oar._core.errors import OarError

MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001"
_PG_LOCK = 0x6F6172  # advisory lock id: one migrating process at a time on PostgreSQL


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The newest revision this release knows."""
    revision = _script().get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine, artifacts: object | None = None) -> None:
    """Upgrade ``engine``'s database to :func:`head`; a no-op (one query) when it is already there.

    ``artifacts`` (the hub's artifact store) lets a migration read what only the store knows, such as
    the sizes of packages registered before sizes were recorded.

    Two processes opening one fresh SQLite hub at once race to create the tables: the loser sees
    an error, finds the database at head and carries on.
    """
    with engine.connect() as connection:
        if current(connection) == head():
            return
    try:
        _upgrade(engine, artifacts)
    except SQLAlchemyError:
        with engine.connect() as connection:
            if current(connection) != head():
                raise


def _upgrade(engine: Engine, artifacts: object | None) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK})
        revision = current(connection)
        if revision == head():
            return
        if revision is not None and revision not in {r.revision for r in _script().walk_revisions()}:
            raise OarError(f"the hub database is at revision {revision}, newer than this oar ({head()}): upgrade oar")
        config = _config(connection)
        config.attributes["artifacts"] = artifacts
        if revision is None and inspect(connection).has_table("models"):
            command.stamp(config, BASELINE)  # a pre-migration hub: its tables are the baseline
        command.upgrade(config, "head")


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config
