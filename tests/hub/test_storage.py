"""Storage figures per owner, from the sizes recorded at registration (on SQLite and PostgreSQL), and
migration 0008, which records them for rows that existed before."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from oar.hub import Hub
from oar.hub.artifacts import ArtifactStore
from oar.hub.orm import DatasetRow, ModelRow, RegisteredDatasetRow, RegisteredModelRow
from oar.hub.schema import _config
from oar.hub.stores import record_size

from .packages import small_package

pytestmark = pytest.mark.timeout(120)

CARD, COUNTS = {"name": "reviews", "labels": ["差", "好"]}, {"train": 8, "valid": 1, "test": 1}
SAMPLES = {"train": [{"input": "很好的酒店", "label": "好"}], "valid": [], "test": []}


def _version(hub: Hub, name: str, version: int, digest: str, size: int | None, owner: str | None) -> None:
    """A version row through the hub's own insert: how two versions come to share one package digest."""
    row = ModelRow(name=name, version=version, digest=digest, task="generic", manifest={}, size=size)
    assert hub.models.insert(row, owner=owner) is not None


def test_a_shared_package_counts_once_per_owner_and_once_in_the_hub(database_url, tmp_path):
    hub = Hub(home=tmp_path / "home", url=database_url)
    for version, digest, size in ((1, "sha256:d1", 100), (2, "sha256:d1", 100), (3, "sha256:d2", 50)):
        _version(hub, "alice-model", version, digest, size, "alice")
    _version(hub, "bob-model", 1, "sha256:d1", 100, "bob")  # the same content as alice's
    _version(hub, "bob-model", 2, "sha256:d3", None, "bob")  # size unknown
    _version(hub, "loose", 1, "sha256:d4", 7, None)
    hub.datasets.register("reviews", "sha256:r", CARD, COUNTS, samples=SAMPLES, owner="alice")
    hub.datasets.register("reviews", "sha256:r2", CARD, COUNTS, samples=None, owner="alice")
    dataset_bytes = record_size(CARD, COUNTS, SAMPLES) + record_size(CARD, COUNTS, None)

    report = hub.storage()
    owners = {u.owner: u for u in report.owners}
    alice, bob = owners["alice"], owners["bob"]
    assert (alice.model_versions, alice.packages, alice.model_bytes, alice.unsized_versions) == (3, 2, 150, 0)
    assert (alice.dataset_versions, alice.dataset_bytes, alice.bytes) == (2, dataset_bytes, 150 + dataset_bytes)
    assert (bob.model_versions, bob.packages, bob.model_bytes, bob.unsized_versions) == (2, 2, 100, 1)
    assert (owners[None].model_versions, owners[None].model_bytes) == (1, 7)
    assert [u.owner for u in report.owners] == ["alice", "bob", None]  # largest first
    assert report.model_bytes == 100 + 50 + 7  # d1 once although alice and bob both hold it
    assert report.bytes == report.model_bytes + dataset_bytes

    mine = hub.storage("bob")
    assert [u.owner for u in mine.owners] == ["bob"] and mine.model_bytes == 100 and mine.dataset_bytes == 0
    assert hub.storage("nobody").owners == [] and hub.storage("nobody").bytes == 0
    hub.close()


def test_registration_records_package_and_dataset_bytes(tmp_path):
    hub = Hub(home=tmp_path / "home")
    registered = hub.register_model(small_package(tmp_path / "src", size=3000), "sized", owner="carol")
    on_disk = sum(p.stat().st_size for p in registered.path.rglob("*") if p.is_file())
    hub.datasets.register("d", "sha256:x", CARD, COUNTS, samples=SAMPLES, owner="carol")
    (carol,) = hub.storage("carol").owners
    assert carol.model_bytes == on_disk > 3000 and carol.dataset_bytes == record_size(CARD, COUNTS, SAMPLES)
    hub.close()


def _at_0007(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        command.upgrade(_config(connection), "0007")
    engine.dispose()


def _rows_from_before(url: str, stored: str) -> None:
    """Rows as revision 0007 left them: no dataset sizes, model versions registered before sizes."""
    engine = sa.create_engine(url)
    columns = {"task": "generic", "manifest": {}, "run_id": None, "parent": None}
    with engine.begin() as connection:
        for version, digest, size in (
            (1, stored, None),
            (2, "sha256:x", 42),
            (3, "sha256:x", None),
            (4, "sha256:gone", None),
        ):
            values = {"name": "old", "version": version, "digest": digest, "size": size, **columns}
            connection.execute(sa.insert(ModelRow.__table__).values(values))
        connection.execute(
            sa.insert(RegisteredModelRow.__table__).values(name="old", owner="dora", task="generic", latest_version=4)
        )
        for version, samples in ((1, SAMPLES), (2, None)):
            values = {"name": "ds", "version": version, "digest": f"sha256:{version}", "card": CARD, "counts": COUNTS}
            connection.execute(sa.insert(DatasetRow.__table__).values({**values, "samples": samples}))
        connection.execute(sa.insert(RegisteredDatasetRow.__table__).values(name="ds", owner="dora"))
    engine.dispose()


def test_migration_0008_records_sizes_for_rows_from_before(database_url, tmp_path: Path):
    _at_0007(database_url)
    store = ArtifactStore(tmp_path / "home" / "artifacts")
    digest, _ = store.commit_package(small_package(tmp_path / "src", size=2000))
    _rows_from_before(database_url, digest)

    hub = Hub(home=tmp_path / "home", url=database_url)  # migrates, asking its store for the sizes
    with hub.sessions() as session:
        sizes = dict(session.execute(sa.select(ModelRow.version, ModelRow.size).where(ModelRow.name == "old")).all())
        datasets = dict(session.execute(sa.select(DatasetRow.version, DatasetRow.size)).all())
    assert sizes == {1: store.size(digest), 2: 42, 3: 42, 4: None}  # from the store, a twin, unknown
    assert datasets == {1: record_size(CARD, COUNTS, SAMPLES), 2: record_size(CARD, COUNTS, None)}
    (dora,) = hub.storage().owners
    assert (dora.model_versions, dora.packages, dora.unsized_versions) == (4, 3, 1)
    assert dora.model_bytes == store.size(digest) + 42
    hub.close()

    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.downgrade(_config(connection), "0007")
        assert "size" not in {c["name"] for c in sa.inspect(connection).get_columns("datasets")}
    engine.dispose()
