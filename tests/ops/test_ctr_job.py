"""``oar train`` on a click-through-rate job, end to end: trained, AUC recorded, exported with the fused
op (parity-checked), registered, served, and the server's answers are the package's."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

from oar.client import ModelClient
from oar.data import load_builtin
from oar.hub import Hub
from oar.runtime import load_runtime
from oar.serve.process import ServerProcess
from oar.train import Callback, CheckpointConfig, Trainer
from oar.train.job import JobData, build_model, parse_job, prepare_data

pytestmark = pytest.mark.slow

JOB = {
    "name": "ctr-job",
    "task": "ctr",
    "data": {"dataset": "synthetic-ctr", "limit": 1024, "valid_limit": 256, "test_limit": 256, "batch_size": 128},
    "model": {"arch": "dlrm", "options": {"dim": 8, "bottom": [16], "top": [32]}},
    "trainer": {
        "epochs": 1,
        "max_steps": 6,
        "lr": 3e-3,
        "weight_decay": 0.0,
        "patience": None,
        "threads": 1,
        "precision_probe": False,
        "log_every": 1,
        "checkpoint": {"every_steps": 3},
    },
    "tensorboard": False,
}


@pytest.mark.timeout(1200)
def test_oar_train_a_ctr_job_through_serving(bag_op, oar_home, tmp_path):
    job = tmp_path / "ctr.yaml"
    job.write_text(yaml.safe_dump(JOB))
    env = {**os.environ, "OAR_HOME": str(tmp_path), "OAR_OPS_CACHE": str(oar_home / "ops-build")}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "oar.cli.main", "train", str(job), "--no-progress"]
    trained = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]

    hub = Hub(tmp_path)
    (run,) = hub.runs.list()
    metrics = run.metrics
    assert run.status == "finished" and metrics["steps"] == 6 and metrics["model"] == "ctr-job:1"
    assert 0.0 < metrics["test_auc"] < 1.0 and 0.0 < metrics["valid_auc"] < 1.0
    # The kept weights are the evaluation with the best validation AUC (a ctr task's monitor).
    evaluations = [h for h in run.history if "valid_auc" in h]
    assert evaluations and metrics["valid_auc"] == pytest.approx(max(h["valid_auc"] for h in evaluations))
    assert f"test AUC {metrics['test_auc']:.4f}" in trained.stdout
    assert metrics["parity"]["passed"] and (tmp_path / "runs" / run.id / "checkpoints" / "step-000000006").is_dir()
    dataset = hub.datasets.get(run.dataset_name, run.dataset_version)
    assert dataset.name == "synthetic-ctr" and dataset.digest == load_builtin("synthetic-ctr").digest
    package = hub.open_package("ctr-job", 1)
    assert package.manifest.runtime.custom_ops and package.manifest.lineage.run_id == run.id
    assert package.manifest.metrics["test_auc"] == metrics["test_auc"]

    data = prepare_data(parse_job(JOB), tmp_path)
    test = served_inputs(data)
    expected = load_runtime(package.path).infer(test)["click_probability"]
    labels = data.test.y.numpy()
    # the package scores the test split as the run measured it: same AUC (a monotone map of the same margins)
    assert roc_auc_score(labels, expected) == pytest.approx(metrics["test_auc"], abs=1e-6)
    rows = {k: v[:100] for k, v in test.items()}
    serve = ["--max-batch-size", "128"]
    with (
        ServerProcess(["ctr-job"], env={"OAR_HOME": str(tmp_path), "OAR_OPS_CACHE": env["OAR_OPS_CACHE"]},
                      extra_args=serve) as server,
        ModelClient(server.endpoint) as rest,
        ModelClient(server.grpc_endpoint) as grpc,
    ):  # fmt: skip
        for client in (rest, grpc):
            served = client.infer("ctr-job", rows)["click_probability"]
            np.testing.assert_allclose(served, expected[:100], rtol=1e-6, atol=1e-7)


def served_inputs(data: JobData) -> dict[str, np.ndarray]:
    """The job's test split as the served model's inputs ``dense`` and ``ids``."""
    packed = torch.cat([inputs for inputs, _ in data.test])
    features = data.dataset.card.features
    dense_n, bag, count = features["dense_features"], features["bag"], len(features["cardinalities"])
    dense = packed[:, :dense_n].numpy().astype(np.float32)
    ids = packed[:, dense_n:].round().long().view(-1, count, bag).numpy()
    return {"dense": dense, "ids": ids}


class _StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if record["step"] == self.step:
            raise KeyboardInterrupt


@pytest.mark.timeout(600)
def test_a_ctr_job_interrupted_and_resumed_ends_with_the_same_weights(bag_op, tmp_path):
    """The job's data and model (the fused op's backward included) resume bit-exact from a checkpoint."""
    job = parse_job(JOB)
    checkpoint = CheckpointConfig(dir=str(tmp_path / "checkpoints"), every_steps=2, keep_last=2)

    def trainer(checkpoint: CheckpointConfig, callbacks=()) -> Trainer:
        data = prepare_data(job, tmp_path)
        torch.manual_seed(job.trainer.seed)
        config = dataclasses.replace(job.trainer, checkpoint=checkpoint)
        return Trainer(build_model(job, data), data.train, data.valid, config, progress=False, callbacks=callbacks)

    whole = trainer(CheckpointConfig())
    whole.fit()
    with pytest.raises(KeyboardInterrupt):
        trainer(checkpoint, [_StopAt(5)]).fit()
    resumed = trainer(checkpoint)
    result = resumed.fit()
    assert result.resumed_from == 4 and result.steps == 6
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
