"""``oar hub gc`` and storage figures, on a local hub with real packages."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oar._core.errors import OarError
from oar.cli.main import app
from oar.hub import Hub, housekeeping

from .packages import small_package as _package

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OAR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OAR_DATABASE_URL", raising=False)
    monkeypatch.delenv("OAR_ARTIFACTS_URL", raising=False)
    monkeypatch.delenv("OAR_STUDIO_URL", raising=False)
    return tmp_path / "home"


def _world(home: Path, tmp_path: Path) -> tuple[Hub, dict[str, str]]:
    hub = Hub()
    digests = {}
    for name, seed, owner in (("gone", 1, "alice"), ("kept", 2, "bob"), ("kept", 3, "bob")):
        digests[name] = hub.register_model(_package(tmp_path / f"{name}{seed}", 5000, seed), name, owner=owner).digest
    hub.model_catalog.delete("gone")  # keeps the files: another name may hold the same content
    return hub, digests


def test_only_packages_no_version_references_are_garbage(home, tmp_path):
    hub, digests = _world(home, tmp_path)
    garbage = housekeeping.unreferenced(hub, timedelta(0))
    assert [g.digest for g in garbage] == [digests["gone"]]
    assert garbage[0].size == hub.artifacts.size(digests["gone"]) > 5000
    assert housekeeping.unreferenced(hub, timedelta(hours=1)) == []  # too young: may be mid-registration
    assert housekeeping.unreferenced(hub, timedelta(0), keep={digests["gone"]}) == []
    housekeeping.remove(hub, garbage)
    assert not hub.artifacts.package_path(digests["gone"]).exists()
    assert [hub.open_package("kept", v).manifest.version for v in (1, 2)] == [1, 2]


def test_gc_lists_first_and_removes_only_when_asked(home, tmp_path):
    hub, digests = _world(home, tmp_path)
    runner = CliRunner()
    listed = runner.invoke(app, ["hub", "gc", "--grace-hours", "0", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [u["digest"] for u in json.loads(listed.output)["unreferenced"]] == [digests["gone"]]
    assert json.loads(listed.output)["unreferenced"][0]["model"] == "gone"
    dry = runner.invoke(app, ["hub", "gc", "--grace-hours", "0", "--dry-run"])
    assert dry.exit_code == 0 and "1 package(s)" in dry.output and "would go" in dry.output, dry.output
    assert runner.invoke(app, ["hub", "gc", "--dry-run", "--apply"]).exit_code != 0
    assert hub.artifacts.package_path(digests["gone"]).exists()
    applied = runner.invoke(app, ["hub", "gc", "--grace-hours", "0", "--apply"])
    assert applied.exit_code == 0 and "removed 1 package" in applied.output, applied.output
    assert not hub.artifacts.package_path(digests["gone"]).exists()
    assert runner.invoke(app, ["hub", "gc", "--grace-hours", "-1"]).exit_code != 0


def test_gc_refuses_while_a_deployment_serves_a_version_the_hub_lost(home, tmp_path):
    from oar.studio.orm import DeploymentRow

    hub, digests = _world(home, tmp_path)
    with hub.sessions() as session:
        session.add(DeploymentRow(id="d1", model="gone", ref="gone:1", version=1, status="running", state={}))
        session.commit()
    result = CliRunner().invoke(app, ["hub", "gc", "--grace-hours", "0", "--apply"])
    assert isinstance(result.exception, OarError) and "deployment d1 serves gone:1" in str(result.exception)
    assert hub.artifacts.package_path(digests["gone"]).exists()


def test_storage_per_owner_counts_versions_and_package_bytes(home, tmp_path):
    hub, _ = _world(home, tmp_path)
    figures = {f.owner: f for f in housekeeping.storage_by_owner(hub)}
    assert set(figures) == {"bob"}  # alice's models were deleted
    expected = sum(hub.artifacts.size(hub.models.get("kept", v).digest) for v in (1, 2))
    assert (figures["bob"].versions, figures["bob"].bytes) == (2, expected)
    out = json.loads(CliRunner().invoke(app, ["hub", "storage", "--json"]).output)
    assert [(o["owner"], o["model_versions"], o["model_bytes"]) for o in out["owners"]] == [("bob", 2, expected)]
    assert out["model_bytes"] == expected


def test_gc_says_whose_bytes_it_would_reclaim(home, tmp_path):
    hub, digests = _world(home, tmp_path)
    orphan = hub.register_model(_package(tmp_path / "kept9", 7000, 9), "kept", owner="bob")
    hub.models.delete("kept", orphan.version)  # the row only, as a registration that stopped before it would
    garbage = housekeeping.unreferenced(hub, timedelta(0))
    assert {(g.model, g.owner) for g in garbage} == {("gone", None), ("kept", "bob")}
    assert housekeeping.reclaimable_by_owner(garbage) == {
        "bob": hub.artifacts.size(orphan.digest),
        None: hub.artifacts.size(digests["gone"]),
    }
    out = CliRunner().invoke(app, ["hub", "gc", "--grace-hours", "0", "--dry-run"], terminal_width=200).output
    assert f"reclaimable bytes per owner: bob {hub.artifacts.size(orphan.digest):,}, no owner known" in out, out


def test_reindex_numbers_the_name_index_in_listing_order(home, tmp_path):
    hub, _ = _world(home, tmp_path)
    out = CliRunner().invoke(app, ["hub", "reindex"])
    assert out.exit_code == 0 and "numbered 1 names in listing order" in out.output, out.output  # "kept"
    assert [m.name for m in hub.model_catalog.search(q="kep").items] == ["kept"]
