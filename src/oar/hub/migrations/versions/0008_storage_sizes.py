"""Storage figures: the bytes of each dataset version's record, and sizes for versions registered before
``models.size`` existed.

- ``datasets.size``: what the hub holds of a dataset version (its card, split counts and sample rows as
  stored JSON), filled for existing rows from the stored text itself;
- ``models.size`` where it is unknown: from another version with the same digest, else from the artifact
  store's own record of the package (a local directory's files, an object store's index: no package is
  downloaded). A package the store no longer has keeps an unknown size.
- SQLite's name index (``registered_models_fts``) numbered in listing order: each entry's rowid grows with
  its ``(updated_at, name)``, renumbered whenever an entry moves to the front, so a search reads its
  newest matches first and stops at the page (``oar.hub.name_search``). A write that lands behind the
  newest entry (an ``updated_at`` from the past) sets the ``fts:unordered`` flag in ``catalog_counts``
  and search goes back to sorting every match.

Revision ID: 0008_storage_sizes
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0008_storage_sizes"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("size", sa.BigInteger, nullable=True))  # bytes of the stored record
    text = "CAST({} AS BLOB)" if op.get_bind().dialect.name == "sqlite" else "{}::text"
    record = " + ".join(f"coalesce(octet_length({text.format(c)}), 0)" for c in ("card", "counts", "samples"))
    if op.get_bind().dialect.name == "sqlite":
        record = record.replace("octet_length", "length")
    op.execute(f"UPDATE datasets SET size = {record} WHERE size IS NULL")
    op.execute(
        "UPDATE models SET size = (SELECT max(other.size) FROM models AS other WHERE other.digest = models.digest) "
        "WHERE size IS NULL"
    )
    _sizes_from_the_store()
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_search_in_listing_order()


def _sizes_from_the_store() -> None:
    """Ask the artifact store the hub opened with (``Hub()`` hands it in) for the sizes still unknown."""
    store = context.config.attributes.get("artifacts")
    if store is None:  # the alembic command line: no store to ask, sizes stay unknown
        return
    from oar._core.errors import NotFoundError

    bind = op.get_bind()
    unknown = bind.execute(sa.text("SELECT DISTINCT digest FROM models WHERE size IS NULL")).scalars().all()
    for digest in unknown:
        try:
            size = store.size(digest)
        except NotFoundError:
            continue
        bind.execute(sa.text("UPDATE models SET size = :size WHERE digest = :digest"), {"size": size, "digest": digest})


UNORDERED = "fts:unordered"
_NEXT_ROWID = "(SELECT coalesce((SELECT rowid FROM registered_models_fts ORDER BY rowid DESC LIMIT 1), 0) + 1)"
# Set the flag when an entry's listing key is not above every other: the rowids no longer follow the listing.
_CHECK_ORDER = (
    f"INSERT INTO catalog_counts (key, n) SELECT '{UNORDERED}', 1 WHERE EXISTS (SELECT 1 FROM registered_models "
    "WHERE (updated_at, name) > (new.updated_at, new.name)) ON CONFLICT (key) DO UPDATE SET n = 1;"
)
_DELETE_OLD = "DELETE FROM registered_models_fts WHERE name LIKE old.name AND name = old.name;"


def _sqlite_search_in_listing_order() -> None:
    op.execute("DELETE FROM registered_models_fts")
    op.execute(
        "INSERT INTO registered_models_fts (rowid, name) "
        "SELECT row_number() OVER (ORDER BY updated_at, name), name FROM registered_models"
    )
    op.execute(f"DELETE FROM catalog_counts WHERE key = '{UNORDERED}'")
    op.execute("DROP TRIGGER registered_models_fts_insert")
    op.execute(
        "CREATE TRIGGER registered_models_fts_insert AFTER INSERT ON registered_models BEGIN "
        f"INSERT INTO registered_models_fts (rowid, name) VALUES ({_NEXT_ROWID}, new.name); {_CHECK_ORDER} END"
    )
    op.execute(
        "CREATE TRIGGER registered_models_fts_move AFTER UPDATE OF updated_at ON registered_models "
        f"WHEN new.updated_at IS NOT old.updated_at BEGIN {_DELETE_OLD} "
        f"INSERT INTO registered_models_fts (rowid, name) VALUES ({_NEXT_ROWID}, new.name); {_CHECK_ORDER} END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER registered_models_fts_move")
        op.execute("DROP TRIGGER registered_models_fts_insert")
        op.execute(
            "CREATE TRIGGER registered_models_fts_insert AFTER INSERT ON registered_models "
            "BEGIN INSERT INTO registered_models_fts (name) VALUES (new.name); END"
        )
        op.execute(f"DELETE FROM catalog_counts WHERE key = '{UNORDERED}'")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("size")
