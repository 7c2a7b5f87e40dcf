"""An elastic job (workers: [1, 2]) grows when room frees up and shrinks when a node goes, at checkpoints.

The model is a bag of words without dropout, so one rank on the whole batch and two ranks on its halves
compute the same gradient up to float rounding: any change in the data order across the resize would
show as different weights, a changed reduction order only as rounding.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml
from jobs_helpers import drive
from safetensors.torch import load_file

import oar.jobs  # noqa: F401
from oar.hub import Hub
from oar.jobs.daemon import build
from oar.jobs.pools import Pool, Pools
from oar.jobs.preemption import ManualPreemptions
from oar.jobs.progress import read_progress
from oar.jobs.scheduler import SchedulerConfig, job_dir
from oar.jobs.service import submit
from oar.jobs.store import JobStore

STEPS = 1200  # 480 texts / 16 x 40 epochs: long enough to outlive the blocking job
JOB = {
    "name": "bow-elastic",
    "data": {"dataset": "chnsenti", "limit": 480, "valid_limit": 64, "batch_size": 16, "vocab_size": 800},
    "model": {"arch": "text-bow", "options": {"embed_dim": 16, "dropout": 0.0}},
    "trainer": {
        "epochs": 40,
        "log_every": 1,
        "eval_every": 200,
        "patience": None,
        "restore_best": False,
        "threads": 1,
        "checkpoint": {"every_steps": 50},
    },
    "tensorboard": False,
}
POOLS = Pools(pools={"on-demand": Pool(node_cpus=2, min_nodes=1, max_nodes=1)})
SPOT = Pool(node_cpus=2, min_nodes=1, max_nodes=1, spot=True, spot_discount=0.5, notice_s=20.0)


def _file(folder: Path, name: str, **changes) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({**JOB, **changes}))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same job, uninterrupted, on one process."""
    from oar.pipelines.train_job import execute, start_run
    from oar.train.job import load_job

    home = tmp_path_factory.mktemp("elastic-reference")
    os.environ["OAR_HOME"] = str(home)
    hub = Hub(home)
    return execute(start_run(load_job(_file(home, "ref.yaml")), hub).id, hub, progress=False)


def _same_weights(run, reference) -> None:
    """Two ranks on halves of each batch give one rank's gradient up to float rounding: only rounding differs."""
    resized, alone = load_file(run.metrics["weights"]), load_file(reference.metrics["weights"])
    for name, tensor in alone.items():
        torch.testing.assert_close(resized[name], tensor, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_an_elastic_job_grows_at_a_checkpoint_and_keeps_the_data_order(tmp_path, reference):
    os.environ["OAR_HOME"] = str(tmp_path)
    hub = Hub(tmp_path)
    blocker_trainer = {**JOB["trainer"], "epochs": 1, "max_steps": 5}
    blocker = submit(_file(tmp_path, "blocker.yaml", trainer=blocker_trainer), hub, POOLS)
    elastic = submit(_file(tmp_path, "elastic.yaml", resources={"workers": [1, 2]}), hub, POOLS)
    store = JobStore.open(hub)
    scheduler = build(hub, pools=POOLS, config=SchedulerConfig(grow_after_s=1.0))
    while not (store.get(blocker.id).done and store.get(elastic.id).done):
        scheduler.tick()
    assert store.get(blocker.id).state == "succeeded"
    job = store.get(elastic.id)
    assert job.state == "succeeded", job.reason
    attempts = store.attempts(job.id)
    assert [(a.workers, a.outcome) for a in attempts] == [(1, "resized"), (2, "succeeded")]
    assert attempts[1].start_step == attempts[0].checkpoint_step == attempts[0].last_step  # a checkpoint boundary
    assert any("resizing from 1" in e.reason for e in job.events)
    run = hub.runs.get(job.run_id)
    assert run.metrics["world_size"] == 2 and run.metrics["steps"] == STEPS
    assert [h["step"] for h in run.history if "train_loss" in h] == list(range(1, STEPS + 1))
    resized_at = attempts[0].last_step
    ours = {h["step"]: h["train_loss"] for h in run.history if "train_loss" in h}
    theirs = {h["step"]: h["train_loss"] for h in reference.history if "train_loss" in h}
    assert all(ours[s] == theirs[s] for s in range(1, resized_at + 1))  # the same process count: exact
    # after the resize rank 0 logs the loss of its half of each batch, so only the weights can be compared
    _same_weights(run, reference)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_an_elastic_job_shrinks_when_its_node_goes_and_keeps_the_data_order(tmp_path, reference):
    """Two workers on a spot node; the node is preempted while a higher-priority job waits for the pool's
    replacement node, so the elastic job resumes there on the one CPU left, from its checkpoint."""
    os.environ["OAR_HOME"] = str(tmp_path)
    hub = Hub(tmp_path)
    pools = Pools(pools={"on-demand": POOLS.pools["on-demand"], "spot": SPOT})
    elastic = submit(_file(tmp_path, "elastic.yaml", resources={"workers": [1, 2], "pool": "spot"}), hub, pools)
    store = JobStore.open(hub)
    source = ManualPreemptions()
    scheduler = build(hub, pools=pools, preemptions=source, config=SchedulerConfig(grow_after_s=1e9))
    urgent: list = []

    def preempt_once_past_step_100() -> None:
        running = [a for a in store.attempts(elastic.id, states=("running",)) if not a.handle.get("stop")]
        if urgent or not running:
            return
        progress = job_dir(hub, elastic.id) / f"attempt-{running[0].number}" / "progress.json"
        if read_progress(progress).get("step", 0) >= 100:
            # long enough to still hold its CPU when the preempted job is placed again
            blocker = {**JOB["trainer"], "epochs": 10}
            resources = {"pool": "spot", "priority": 10}
            urgent.append(submit(_file(tmp_path, "urgent.yaml", trainer=blocker, resources=resources), hub, pools))
            source.preempt(running[0].nodes[0], SPOT.notice_s, "test preemption")

    drive(
        scheduler,
        lambda: store.get(elastic.id).done and bool(urgent) and store.get(urgent[0].id).done,
        800,
        preempt_once_past_step_100,
    )
    assert store.get(urgent[0].id).state == "succeeded"
    job = store.get(elastic.id)
    assert job.state == "succeeded", job.reason
    attempts = store.attempts(job.id)
    assert [(a.workers, a.outcome) for a in attempts] == [(2, "preempted"), (1, "succeeded")]
    assert attempts[0].exit_code == 75 and attempts[0].checkpoint_step == attempts[0].last_step  # nothing lost
    assert attempts[1].start_step == attempts[0].checkpoint_step and attempts[1].nodes != attempts[0].nodes
    run = hub.runs.get(job.run_id)
    assert run.metrics["world_size"] == 1 and run.metrics["steps"] == STEPS
    assert [h["step"] for h in run.history if "train_loss" in h] == list(range(1, STEPS + 1))  # none lost or repeated
    _same_weights(run, reference)
