"""Aliases (``name@alias``) with their audit log, and catalog listings, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from oar._core.errors import InvalidInputError, ModelNotFoundError, NotFoundError
from oar.hub import Hub, parse_model_ref
from oar.hub.orm import ModelRow
from oar.serve.repository import parse_model_spec

pytestmark = pytest.mark.timeout(120)


def _add_versions(hub: Hub, name: str, count: int, task: str = "text-classification", owner: str | None = None):
    """Model versions straight through the store: the catalog and aliases need rows, not package files."""
    for version in range(1, count + 1):
        row = ModelRow(
            name=name,
            version=version,
            digest=f"sha256:{name}{version}",
            task=task,
            run_id=None,
            parent=None,
            manifest={"name": name, "version": version},
        )
        assert hub.models.insert(row, owner=owner) is not None


@pytest.fixture()
def hub(database_url, tmp_path):
    hub = Hub(home=tmp_path / "home", url=database_url)
    yield hub
    hub.close()


def test_an_alias_resolves_and_every_move_is_audited(hub):
    _add_versions(hub, "m", 3)
    created = hub.aliases.set("m", "production", 1, actor="alice")
    moved = hub.aliases.set("m", "production", 3, actor="bob")
    assert hub.models.resolve("m@production").version == 3
    assert (created.from_version, created.to_version, created.actor) == (None, 1, "alice")
    assert (moved.from_version, moved.to_version, moved.actor) == (1, 3, "bob")
    history = hub.aliases.history("m")
    assert [(e.from_version, e.to_version, e.actor) for e in history] == [(1, 3, "bob"), (None, 1, "alice")]
    assert history[0].at >= history[1].at


def test_setting_an_alias_to_where_it_points_records_nothing(hub):
    _add_versions(hub, "m", 1)
    hub.aliases.set("m", "staging", 1, actor="alice")
    assert hub.aliases.set("m", "staging", 1, actor="alice") is None
    assert len(hub.aliases.history("m", "staging")) == 1


def test_removing_an_alias_is_audited_and_it_stops_resolving(hub):
    _add_versions(hub, "m", 2)
    hub.aliases.set("m", "production", 2, actor="alice")
    removed = hub.aliases.remove("m", "production", actor="carol")
    assert (removed.from_version, removed.to_version) == (2, None)
    with pytest.raises(ModelNotFoundError, match="no alias 'production'; aliases: none"):
        hub.models.resolve("m@production")


def test_an_alias_to_a_missing_version_is_refused(hub):
    _add_versions(hub, "m", 2)
    with pytest.raises(ModelNotFoundError, match="no version 7"):
        hub.aliases.set("m", "production", 7)
    with pytest.raises(InvalidInputError, match="bad alias"):
        hub.aliases.set("m", "9lives", 1)
    assert hub.aliases.history("m") == []


def test_serve_parses_an_alias_through_the_hub(hub):
    _add_versions(hub, "m", 2)
    hub.aliases.set("m", "production", 2)
    assert parse_model_spec("m@production", hub) == ("m", 2)
    assert parse_model_spec("m:1", hub) == ("m", 1)
    assert parse_model_spec("m") == ("m", None)


@pytest.mark.parametrize("spec", ["@x", "m@", "m@1x", ":3", "m:0", "m:abc", "m@pro duction"])
def test_bad_references_are_clear_errors(spec):
    with pytest.raises(InvalidInputError, match="bad model"):
        parse_model_ref(spec)


def test_the_catalog_filters_by_task_name_tag_owner_and_visibility(hub):
    _add_versions(hub, "sentiment-a", 2, owner="alice")
    _add_versions(hub, "sentiment-b", 1, owner="bob")
    _add_versions(hub, "digits", 1, task="image-classification", owner="alice")
    hub.model_catalog.update("sentiment-b", tags=["zh", "prod"], visibility="public")

    def names(**filters):
        return sorted(m.name for m in hub.model_catalog.search(**filters).items)

    assert names(task="image-classification") == ["digits"]
    assert names(q="senti") == ["sentiment-a", "sentiment-b"]
    assert names(q="%") == []  # LIKE wildcards are searched for literally
    assert names(tag="zh") == ["sentiment-b"]
    assert names(owner="alice") == ["digits", "sentiment-a"]
    assert names(public_only=True) == ["sentiment-b"]
    page = hub.model_catalog.search(limit=2)
    assert (len(page.items), page.total) == (2, 3)
    assert hub.model_catalog.get("sentiment-a").latest_version == 2
    with pytest.raises(InvalidInputError, match="bad page"):
        hub.model_catalog.search(limit=0)


def test_deleting_a_model_removes_its_versions_and_audits_its_aliases(hub):
    _add_versions(hub, "m", 2)
    hub.aliases.set("m", "production", 2, actor="alice")
    assert hub.model_catalog.delete("m", actor="admin") == 2
    with pytest.raises(ModelNotFoundError):
        hub.models.get("m")
    with pytest.raises(NotFoundError):
        hub.model_catalog.get("m")
    assert hub.aliases.history("m")[0].to_version is None
