"""Model packages and the hub: digests, versions, lineage, integrity."""

import shutil

import pytest

from oar._core.errors import IntegrityError, ModelNotFoundError, NotFoundError
from oar.hub import Hub
from oar.package import ModelPackage


@pytest.fixture()
def fresh_hub(tmp_path):
    return Hub(home=tmp_path / "home")


def test_trained_package_records_signature_parity_and_lineage(trained):
    manifest = ModelPackage.open(trained.model.path).manifest
    assert [t.name for t in manifest.inputs] == ["text"]
    assert [t.name for t in manifest.outputs] == ["label", "score", "probabilities"]
    assert manifest.parity is not None and manifest.parity.passed
    assert manifest.parity.max_abs_diff <= 1e-4
    assert manifest.lineage.dataset["name"] == "chnsenti"
    assert manifest.lineage.dataset["digest"] == trained.dataset.digest
    assert manifest.lineage.run_id == trained.run.id
    assert {"model.onnx", "tokenizer.json"} <= set(manifest.files)
    assert all(not name.endswith((".pt", ".pkl", ".bin")) for name in manifest.files), "no pickle in packages"


def test_registering_again_adds_a_version_with_the_same_files(trained, fresh_hub):
    first = fresh_hub.register_model(trained.model.path, name="copy")
    second = fresh_hub.register_model(trained.model.path, name="copy")
    assert (first.version, second.version) == (1, 2)
    assert fresh_hub.models.get("copy").version == 2
    assert fresh_hub.open_package("copy", 1).manifest.version == 1


def test_a_tampered_package_is_refused(trained, tmp_path):
    copy = tmp_path / "pkg"
    shutil.copytree(trained.model.path, copy)
    (copy / "tokenizer.json").write_text("{}")
    with pytest.raises(IntegrityError, match=r"tokenizer\.json"):
        ModelPackage.open(copy)


def test_missing_model_and_version_errors_list_what_exists(trained, hub):
    with pytest.raises(ModelNotFoundError, match="chnsenti-smoke"):
        hub.models.get("nope")
    with pytest.raises(ModelNotFoundError, match="versions: 1"):
        hub.models.get("chnsenti-smoke", 99)
    with pytest.raises(NotFoundError, match="oar runs list"):
        hub.runs.get("no-run")


def test_dataset_registration_is_idempotent_by_digest(trained, hub):
    again = hub.register_dataset(trained.dataset)
    assert again.version == trained.dataset_version.version
    assert again.digest == trained.dataset.digest


def test_run_is_recorded_with_history_and_metrics(trained, hub):
    run = hub.runs.get(trained.run.id)
    assert run.status == "finished"
    assert run.metrics["model"] == trained.model.model_id
    assert run.history and "valid_accuracy" in run.history[-1]
