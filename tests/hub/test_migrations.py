"""The hub's schema comes from Alembic migrations; an OAR_HOME from before migrations upgrades in place."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import oar.competitions.orm  # the competition tables share the hub's metadata
import oar.jobs.orm  # the job tables share the hub's metadata
import oar.studio.orm  # noqa: F401  (the studio's tables share the hub's metadata)
from oar.hub import Hub
from oar.hub.orm import Base, outside_metadata
from oar.hub.schema import head

from . import legacy_orm

pytestmark = pytest.mark.timeout(120)

LEGACY_MANIFEST = {
    "name": "legacy",
    "version": 2,
    "task": "text-classification",
    "lineage": {"dataset": {"name": "chnsenti", "version": 1, "digest": "sha256:d"}, "run_id": "run1", "parent": None},
}


def _legacy_database(url: str) -> None:
    """A hub as release 0.1.0 left it: tables from create_all, no alembic_version, real rows."""
    engine = sa.create_engine(url)
    legacy_orm.Base.metadata.create_all(engine)
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with sa.orm.Session(engine) as session:
        session.add(
            legacy_orm.DatasetRow(
                name="chnsenti",
                version=1,
                digest="sha256:d",
                card={"name": "chnsenti", "labels": ["neg", "pos"]},
                counts={"train": 8, "valid": 1, "test": 1},
                created_at=t0,
            )
        )
        session.add(
            legacy_orm.RunRow(
                id="run1",
                kind="train",
                status="finished",
                dataset_name="chnsenti",
                dataset_version=1,
                config={"epochs": 2},
                metrics={"test_accuracy": 0.83},
                history=[{"step": 1, "train_loss": 0.7}, {"step": 2, "train_loss": 0.5}],
                started_at=t0,
                finished_at=t0,
            )
        )
        for version in (1, 2):
            session.add(
                legacy_orm.ModelRow(
                    name="legacy",
                    version=version,
                    digest=f"sha256:{version}",
                    task="text-classification",
                    run_id="run1",
                    parent=None,
                    manifest={**LEGACY_MANIFEST, "version": version},
                    created_at=t0,
                )
            )
        session.commit()
    engine.dispose()


def test_a_hub_from_before_migrations_upgrades_in_place_with_nothing_lost(database_url, tmp_path):
    _legacy_database(database_url)
    hub = Hub(home=tmp_path / "home", url=database_url)
    with hub.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head()
    dataset = hub.datasets.get("chnsenti")
    assert (dataset.version, dataset.counts["train"], dataset.card["labels"]) == (1, 8, ["neg", "pos"])
    run = hub.runs.get("run1")
    assert run.metrics == {"test_accuracy": 0.83} and [h["step"] for h in run.history] == [1, 2]
    assert [m.version for m in hub.models.list()] == [1, 2]
    assert hub.models.get("legacy").manifest["lineage"]["run_id"] == "run1"
    entry = hub.model_catalog.get("legacy")
    assert (entry.latest_version, entry.visibility, entry.owner) == (2, "private", None)
    assert hub.dataset_catalog.get("chnsenti").latest_version == 1
    hub.aliases.set("legacy", "production", 1, actor="admin")  # the new tables work on the upgraded database
    assert hub.models.resolve("legacy@production").version == 1
    hub.close()


def test_opening_twice_keeps_the_data_and_the_revision(database_url, tmp_path):
    _legacy_database(database_url)
    Hub(home=tmp_path / "home", url=database_url).close()
    hub = Hub(home=tmp_path / "home", url=database_url)
    assert len(hub.models.list()) == 2
    hub.close()


def test_the_migrations_build_exactly_the_orm_schema(database_url, tmp_path):
    hub = Hub(home=tmp_path / "home", url=database_url)
    with hub.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_name": lambda name, _type, _parents: not outside_metadata(name)}
        )
        differences = compare_metadata(context, Base.metadata)
    hub.close()
    assert differences == []


def test_a_database_newer_than_this_release_is_refused_with_a_hint(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    Hub(home=tmp_path / "home", url=url).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(Exception, match="newer than this oar"):
        Hub(home=tmp_path / "home", url=url)
