"""Every reader of a registered package works on a machine whose cache does not hold it yet.

The smoke model is registered on machine A into an S3 API (moto's server); each consumer then runs on
its own machine (a fresh OAR_HOME, so an empty cache) sharing only the database and the bucket, and
must fetch the parent through the hub's store before reading it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oar.export.reexport import export_registered
from oar.export.variants import QuantizeOptions, quantize_registered
from oar.hub import Hub
from oar.jobs.ledger import model_cost
from oar.package import ModelPackage

pytest.importorskip("boto3")
pytestmark = pytest.mark.timeout(900)  # the first test may train the shared smoke model


@pytest.fixture()
def shared(s3, tmp_path, trained):
    """The database URL, the store URL and the version machine A registered there."""
    _, bucket = s3
    url, store = f"sqlite:///{tmp_path / 'shared.db'}", f"s3://{bucket}/hub"
    machine_a = Hub(tmp_path / "a", url, store)
    parent = machine_a.register_model(trained.model.path, "remote-smoke")
    machine_a.close()
    return url, store, parent


def _fresh(tmp_path: Path, name: str, url: str, store: str) -> Hub:
    hub = Hub(tmp_path / name, url, store)
    assert not any(hub.artifacts.cache.iterdir())  # nothing of the package on this machine yet
    return hub


def _cached(hub: Hub, digest: str) -> bool:
    return hub.artifacts.package_path(digest).is_dir()


def test_reexport_and_quantize_fetch_their_parent_into_an_empty_cache(shared, tmp_path):
    url, store, parent = shared
    machine_b = _fresh(tmp_path, "b", url, store)
    reexported = export_registered(machine_b, parent.model_id, name="remote-smoke-again")
    assert reexported.parent == parent.model_id and _cached(machine_b, parent.digest)
    machine_c = _fresh(tmp_path, "c", url, store)
    outcome = quantize_registered(machine_c, parent.model_id, QuantizeOptions("int8-dynamic", latency_repeats=2))
    assert outcome.refused is None and outcome.registered.parent == parent.model_id
    assert _cached(machine_c, parent.digest)
    machine_d = _fresh(tmp_path, "d", url, store)  # what B and C registered opens anywhere, verified
    assert machine_d.open_version(reexported).manifest.parity.passed
    assert machine_d.open_version(outcome.registered).manifest.variant == "int8-dynamic"
    for hub in (machine_b, machine_c, machine_d):
        hub.close()


def test_the_cli_packs_and_shows_a_version_this_machine_never_held(shared, tmp_path):
    url, store, parent = shared
    env = {**os.environ, "OAR_HOME": str(tmp_path / "e"), "OAR_DATABASE_URL": url, "OAR_ARTIFACTS_URL": store}

    def oar(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "oar.cli.main", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    shown = oar("models", "show", parent.model_id)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["path"] is None and json.loads(shown.stdout)["store"] == store
    packed = oar("pack", parent.model_id, "--out", str(tmp_path / "edge"))
    assert packed.returncode == 0, packed.stderr
    edge = ModelPackage.open(tmp_path / "edge")  # its files verify against the manifest's digests
    assert edge.manifest.files["model.onnx"] == parent.manifest["files"]["model.onnx"]
    assert json.loads(oar("models", "show", parent.model_id).stdout)["path"] is not None  # now in E's cache


def test_the_cost_ledger_reads_the_database_only(shared, tmp_path):
    url, store, parent = shared
    machine_f = _fresh(tmp_path, "f", url, store)
    run_id, summary = model_cost(machine_f, parent.name, parent.version)
    assert run_id == parent.run_id and summary.attempts == ()
    assert not _cached(machine_f, parent.digest)  # a model's cost needs no package bytes
    machine_f.close()
