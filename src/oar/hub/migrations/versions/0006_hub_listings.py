"""Catalog listings that stay fast at a million versions.

- one index per filter ending in the listing order ``(updated_at, name)``, so a page or a cursor's next
  page reads a page of index entries (the single-column indexes they replace are dropped);
- ``catalog_counts``: how many entries match each single filter, kept by triggers, so totals are one read;
- ``models.size``: the bytes of each version's package, for per-owner storage figures;
- name search through an index: an FTS5 trigram table on SQLite, a ``pg_trgm`` GIN index on PostgreSQL
  (skipped with a warning where the server does not offer ``pg_trgm``: search then scans, still correct).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

_INDEXES = {
    "ix_registered_models_recent": ["updated_at", "name"],
    "ix_registered_models_task_recent": ["task", "updated_at", "name"],
    "ix_registered_models_owner_recent": ["owner", "updated_at", "name"],
    "ix_registered_models_visibility_recent": ["visibility", "updated_at", "name"],
}
_OLD_INDEXES = {
    "ix_registered_models_owner": ["owner"],
    "ix_registered_models_task": ["task"],
    "ix_registered_models_updated_at": ["updated_at"],
}
# The counter keys of one row, as SQL over a row alias: the same on both databases.
_MODEL_KEYS = ("'*'", "'task:' || {r}.task", "'owner:' || coalesce({r}.owner, '')", "'visibility:' || {r}.visibility")
_TAG_KEYS = ("'tag:' || {r}.tag",)
_UPSERT = "INSERT INTO catalog_counts (key, n) {rows} ON CONFLICT (key) DO UPDATE SET n = catalog_counts.n + excluded.n"


def upgrade() -> None:
    op.add_column("models", sa.Column("size", sa.BigInteger, nullable=True))  # package bytes, for storage figures
    for name in _OLD_INDEXES:
        op.drop_index(name, table_name="registered_models")
    for name, columns in _INDEXES.items():
        op.create_index(name, "registered_models", columns)
    op.create_table(
        "catalog_counts",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    keys = [f"SELECT {k.format(r='m')} AS k FROM registered_models m" for k in _MODEL_KEYS]
    keys += [f"SELECT {k.format(r='t')} AS k FROM model_tags t" for k in _TAG_KEYS]
    op.execute(f"INSERT INTO catalog_counts (key, n) SELECT k, count(*) FROM ({' UNION ALL '.join(keys)}) s GROUP BY k")
    if op.get_bind().dialect.name == "postgresql":
        _postgres_counters()
        _postgres_search()
    else:
        _sqlite_counters()
        _sqlite_search()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, suffixes in (("registered_models", ("insert", "update", "delete")), ("model_tags", ("ins", "del"))):
            for suffix in suffixes:
                op.execute(f"DROP TRIGGER IF EXISTS oar_counts_{table}_{suffix} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS oar_counts_registered_models()")
        op.execute("DROP FUNCTION IF EXISTS oar_counts_model_tags()")
        op.execute("DROP INDEX IF EXISTS ix_registered_models_name_trgm")
    else:
        for trigger in ("insert", "update", "delete", "tag_insert", "tag_delete", "fts_insert", "fts_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS registered_models_{trigger}")
        op.execute("DROP TABLE IF EXISTS registered_models_fts")
    op.drop_table("catalog_counts")
    for name in _INDEXES:
        op.drop_index(name, table_name="registered_models")
    for name, columns in _OLD_INDEXES.items():
        op.create_index(name, "registered_models", columns)
    with op.batch_alter_table("models") as batch:
        batch.drop_column("size")


def _sqlite_counters() -> None:
    """Row triggers: SQLite has no statement triggers, and each upsert is a B-tree write in-process."""

    def body(keys: tuple[str, ...], row: str, delta: int) -> str:
        return "".join(_UPSERT.format(rows=f"VALUES ({k.format(r=row)}, {delta})") + "; " for k in keys)

    moved = _MODEL_KEYS[1:]  # an update never changes how many entries there are
    op.execute(
        f"CREATE TRIGGER registered_models_insert AFTER INSERT ON registered_models BEGIN "
        f"{body(_MODEL_KEYS, 'new', 1)}END"
    )
    op.execute(
        "CREATE TRIGGER registered_models_update AFTER UPDATE OF task, owner, visibility ON registered_models "
        f"BEGIN {body(moved, 'old', -1)}{body(moved, 'new', 1)}END"
    )
    op.execute(
        f"CREATE TRIGGER registered_models_delete AFTER DELETE ON registered_models BEGIN "
        f"{body(_MODEL_KEYS, 'old', -1)}END"
    )
    op.execute(
        f"CREATE TRIGGER registered_models_tag_insert AFTER INSERT ON model_tags BEGIN {body(_TAG_KEYS, 'new', 1)}END"
    )
    op.execute(
        f"CREATE TRIGGER registered_models_tag_delete AFTER DELETE ON model_tags BEGIN {body(_TAG_KEYS, 'old', -1)}END"
    )


def _sqlite_search() -> None:
    """An FTS5 trigram table of the names: substring search (3+ characters) through an index.

    It holds its own copy of each name rather than pointing at ``registered_models``' implicit rowids,
    which ``VACUUM`` may renumber.
    """
    op.execute("CREATE VIRTUAL TABLE registered_models_fts USING fts5(name, tokenize='trigram')")
    op.execute("INSERT INTO registered_models_fts (name) SELECT name FROM registered_models")
    op.execute(
        "CREATE TRIGGER registered_models_fts_insert AFTER INSERT ON registered_models "
        "BEGIN INSERT INTO registered_models_fts (name) VALUES (new.name); END"
    )
    # LIKE on a trigram table is answered from its index; '=' keeps only the exact name ('_' is a wildcard).
    op.execute(
        "CREATE TRIGGER registered_models_fts_delete AFTER DELETE ON registered_models "
        "BEGIN DELETE FROM registered_models_fts WHERE name LIKE old.name AND name = old.name; END"
    )


def _postgres_counters() -> None:
    """Statement triggers over transition tables: one grouped upsert per statement, keys in a fixed order
    (two writers never lock the same counters in opposite orders)."""

    def upsert(keys: tuple[str, ...], source: str, sign: str) -> str:
        selects = " UNION ALL ".join(f"SELECT {k.format(r='r')} AS k FROM {source}" for k in keys)
        return _UPSERT.format(rows=f"SELECT k, {sign}count(*) FROM ({selects}) s GROUP BY k ORDER BY k") + ";"

    moved = _MODEL_KEYS[1:]
    changed = (
        "old_rows r JOIN new_rows c ON c.name = r.name "
        "WHERE (r.task, r.owner, r.visibility) IS DISTINCT FROM (c.task, c.owner, c.visibility)"
    )
    changed_new = changed.replace("old_rows r JOIN new_rows c", "new_rows r JOIN old_rows c")
    op.execute(f"""
        CREATE FUNCTION oar_counts_registered_models() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'INSERT' THEN {upsert(_MODEL_KEYS, "new_rows r", "")}
          ELSIF TG_OP = 'DELETE' THEN {upsert(_MODEL_KEYS, "old_rows r", "-")}
          ELSE {upsert(moved, changed, "-")} {upsert(moved, changed_new, "")}
          END IF;
          RETURN NULL;
        END $$""")
    op.execute(f"""
        CREATE FUNCTION oar_counts_model_tags() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'INSERT' THEN {upsert(_TAG_KEYS, "new_rows r", "")}
          ELSE {upsert(_TAG_KEYS, "old_rows r", "-")}
          END IF;
          RETURN NULL;
        END $$""")
    for table, suffix, event, refs in (
        ("registered_models", "insert", "INSERT", "NEW TABLE AS new_rows"),
        ("registered_models", "update", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("registered_models", "delete", "DELETE", "OLD TABLE AS old_rows"),
        ("model_tags", "ins", "INSERT", "NEW TABLE AS new_rows"),
        ("model_tags", "del", "DELETE", "OLD TABLE AS old_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER oar_counts_{table}_{suffix} AFTER {event} ON {table} REFERENCING {refs} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION oar_counts_{table}()"
        )


def _postgres_search() -> None:
    """A trigram GIN index answers ``name ILIKE '%text%'`` without reading the table."""
    bind = op.get_bind()
    if bind.scalar(sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'")) == 0:
        log.warning("pg_trgm is not available on this PostgreSQL server: model name search will scan the catalog")
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as error:
        log.warning("could not create pg_trgm (%s): model name search will scan the catalog", error.orig)
        return
    op.execute("CREATE INDEX ix_registered_models_name_trgm ON registered_models USING gin (name gin_trgm_ops)")
