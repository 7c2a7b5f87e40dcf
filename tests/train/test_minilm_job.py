"""``oar train`` fine-tunes the bundled pretrained MiniLM-L6 and ends with a registered, parity-checked
package: the Python-only recipe, reachable from a YAML job."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from oar.hub import Hub

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

JOB = {
    "name": "rt-minilm",
    "data": {
        "dataset": "rotten-tomatoes",
        "limit": 96,
        "valid_limit": 32,
        "test_limit": 48,
        "batch_size": 16,
        "max_tokens": 48,
    },
    "model": {"arch": "minilm", "options": {"dropout": 0.1}},
    "trainer": {"epochs": 1, "max_steps": 4, "lr": 1e-4, "patience": None, "threads": 1, "precision_probe": False},
    "tensorboard": False,
}


def _oar(home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OAR_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "oar.cli.main", *args], env=env, capture_output=True, text=True, timeout=1500
    )


def test_a_minilm_job_fine_tunes_from_the_bundled_weights_and_registers(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(JOB))
    trained = _oar(tmp_path, "train", str(job), "--no-progress")
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run,) = Hub(tmp_path).runs.list()
    assert run.status == "finished" and run.metrics["model"] == "rt-minilm:1" and run.metrics["steps"] == 4
    assert run.metrics["parity"]["passed"] and run.metrics["parity"]["argmax_agreement"] == 1.0
    package = Hub(tmp_path).open_package("rt-minilm", 1)
    assert len(package.manifest.labels) == 2
    assert package.manifest.lineage.run_id == run.id
    assert run.metrics["parity"]["samples"] == 48 and "registered rt-minilm:1" in trained.stdout
    _served_answers_equal_the_package(tmp_path, package)


def _served_answers_equal_the_package(home, package) -> None:
    """``oar serve rt-minilm`` over REST and gRPC gives the package runtime's answers, in mixed-length batches."""
    import numpy as np

    from oar.client import ModelClient
    from oar.data import load_builtin
    from oar.runtime import load_runtime
    from oar.serve.process import ServerProcess

    texts = list(load_builtin("rotten-tomatoes").test.x[:24])
    tensor = {"text": np.array([t.encode() for t in texts], dtype=object)}
    expected = load_runtime(package.path).infer(tensor)
    with (
        ServerProcess(["rt-minilm"], env={"OAR_HOME": str(home)}) as server,
        ModelClient(server.endpoint) as rest,
        ModelClient(server.grpc_endpoint) as grpc,
    ):
        for client in (rest, grpc):
            served = client.infer("rt-minilm", tensor)
            assert _labels(served["label"]) == _labels(expected["label"])
            np.testing.assert_allclose(served["probabilities"], expected["probabilities"], rtol=1e-5, atol=1e-6)
            assert client.predict("rt-minilm", {"text": texts[0]})["label"] == _labels(expected["label"])[0]


def _labels(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
