"""Few-shot text classification end to end, and its refusals.

One real run (K=8 on rotten-tomatoes, one contrastive step: the chain, not the accuracy, is under
test) goes through ``oar fewshot train`` -> package -> hub -> a real ``oar serve`` process ->
``ModelClient``, whose answers must be the package's own ONNX graph run on the package's tokenizer.
Accuracy figures come from bench/fewshot.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from oar import ModelClient
from oar._core.errors import InvalidInputError
from oar.data import DataCard, Dataset
from oar.fewshot.shots import check_shots, draw_shots

TEXTS = ["A warm, funny and beautifully acted film.", "Tedious, joyless and far too long.", "It is a movie."]


def oar_cli(*args: str, home: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "oar.cli.main", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "rotten-tomatoes", "--shots", "0"], "at least 1"),
        (["--dataset", "rotten-tomatoes", "--shots", "100000"], "more than class"),
        (["--dataset", "no-such-data", "--shots", "8"], "no built-in dataset 'no-such-data'"),
        (["--dataset", "digits", "--shots", "8"], "not labelled text"),
    ],
)
def test_bad_input_is_one_clean_line_and_exit_1(tmp_path, args, message):
    result = oar_cli("fewshot", "train", *args, home=tmp_path, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").rglob("manifest.json"))


def test_a_dataset_without_labels_is_refused():
    card = DataCard(name="unlabelled", task="text-classification", source="test", license="-", labels=[])
    data = Dataset.from_records(card, [f"text {i}" for i in range(30)], np.zeros(30, dtype=np.int64))
    with pytest.raises(InvalidInputError, match="no labels"):
        check_shots(data, 2)


def test_the_draw_is_k_per_class_and_a_function_of_the_seed():
    card = DataCard(name="tiny", task="text-classification", source="test", license="-", labels=["a", "b"])
    data = Dataset.from_records(card, [f"text {i}" for i in range(100)], np.array([0] * 70 + [1] * 30))
    ids = draw_shots(data, 5, seed=3)
    assert np.bincount(data.train.y[ids]).tolist() == [5, 5]
    assert ids.tolist() == draw_shots(data, 5, seed=3).tolist() != draw_shots(data, 5, seed=4).tolist()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_train_package_hub_serve_and_the_client_agrees_with_the_package(tmp_path):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from oar.hub import Hub
    from oar.serve.process import ServerProcess

    home = tmp_path / "home"
    args = ["--dataset", "rotten-tomatoes", "--shots", "8", "--seed", "1", "--name", "rt-few"]
    quick = ["--iterations", "1", "--max-pairs", "16", "--test-limit", "40"]
    result = oar_cli("fewshot", "train", *args, *quick, home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registered rt-few:1" in result.stdout

    hub = Hub(home)
    model = hub.models.get("rt-few", 1)
    run = hub.runs.get(model.run_id)
    lineage = model.manifest["lineage"]
    assert run.kind == "fewshot" and run.status == "finished"
    assert lineage["run_id"] == run.id and lineage["dataset"]["name"] == "rotten-tomatoes"
    assert lineage["examples"]["shots"] == 8 and lineage["examples"]["seed"] == 1
    assert lineage["examples"]["ids"] == run.config["example_ids"] and len(run.config["example_ids"]) == 16
    assert model.manifest["parity"]["passed"] is True
    assert 0.0 <= run.metrics["test_accuracy"] <= 1.0 and run.metrics["contrastive_steps"] == 1.0

    tokenizer = Tokenizer.from_file(str(model.path / "tokenizer.json"))
    ids = np.array([e.ids for e in tokenizer.encode_batch(TEXTS)], dtype=np.int64)
    logits = ort.InferenceSession(str(model.path / "model.onnx")).run(None, {"input_ids": ids})[0]
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    labels = json.loads((model.path / "manifest.json").read_text())["labels"]

    with ServerProcess(["rt-few"], env={"OAR_HOME": str(home)}) as server, ModelClient(server.endpoint) as client:
        served = client.predict("rt-few", inputs={"text": TEXTS})
    assert [r["label"] for r in served] == [labels[i] for i in logits.argmax(1)]
    np.testing.assert_allclose([r["score"] for r in served], probabilities.max(1), rtol=1e-4, atol=1e-5)


def test_a_fewshot_job_file_is_checked_at_submission_and_queued_as_its_own_kind(tmp_path):
    import yaml

    import oar.jobs  # noqa: F401  (the job tables)
    from oar.hub import Hub
    from oar.jobs.kinds import worker_module
    from oar.jobs.pools import default_pools
    from oar.jobs.service import submit
    from oar.jobs.store import JobStore

    hub = Hub(tmp_path / "home")
    path = tmp_path / "job.yaml"
    bad = {"name": "rt", "fewshot": {"dataset": "rotten-tomatoes", "shots": 8, "epochs": 3}}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(InvalidInputError, match="epochs"):
        submit(path, hub, default_pools())
    path.write_text(yaml.safe_dump({"fewshot": {"dataset": "rotten-tomatoes", "shots": 100000}}))
    with pytest.raises(InvalidInputError, match="more than class"):
        submit(path, hub, default_pools())
    good = {
        "name": "rt-job",
        "fewshot": {"dataset": "rotten-tomatoes", "shots": 4, "seed": 2},
        "resources": {"pool": "spot"},
    }
    path.write_text(yaml.safe_dump(good))
    job = submit(path, hub, default_pools())
    run = hub.runs.get(job.run_id)
    assert worker_module(job.spec) == "oar.fewshot.job" and job.pool == "spot"
    assert run.kind == "fewshot" and run.status == "queued" and len(run.config["example_ids"]) == 8
    assert run.config["model_name"] == "rt-job" and JobStore.open(hub).get(job.id).state == "queued"
