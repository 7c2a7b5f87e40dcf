"""Storage figures: the bytes of each dataset version's record, and sizes for versions registered before
``models.size`` existed.

- ``datasets.size``: what the hub holds of a dataset version (its card, split counts and sample rows as
  stored JSON), filled for existing rows from the stored text itself;
- ``models.size`` where it is unknown: from another version with the same digest, else from the artifact
  store's own record of the package (a local directory's files, an object store's index: no package is
  downloaded). A package the store no longer has keeps an unknown size.

Revision ID: 0008_hubgaps
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0008_hubgaps"
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


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("size")
