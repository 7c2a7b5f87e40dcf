"""Jobs for the studio tests: a real tiny job placed and run by the local scheduler, and a queue recorded
through ``JobStore`` as the scheduler records it (a spot job preempted twice then moved to on-demand,
a running job, waiting ones)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

import oar.jobs  # noqa: F401  (the job tables on the hub's Base)
from oar.jobs.pools import Pool, Pools
from oar.jobs.scheduler import log_path
from oar.jobs.store import JobStore

POOLS = Pools(
    pools={
        "on-demand": Pool(price_per_hour=0.10, min_nodes=1, max_nodes=1),
        "spot": Pool(price_per_hour=0.10, spot=True, spot_discount=0.7, notice_s=30, min_nodes=1, max_nodes=1),
    }
)
TINY_STEPS = 16  # 256 images / 16 a batch, one epoch
TINY_JOB = {
    "name": "digits-tiny",
    "data": {"dataset": "digits", "limit": 256, "valid_limit": 64, "batch_size": 16},
    "model": {"arch": "cnn", "options": {"width": 8, "dropout": 0.2}},
    "trainer": {
        "epochs": 1,
        "log_every": 1,
        "eval_every": 8,
        "patience": None,
        "restore_best": False,
        "threads": 1,
        "checkpoint": {"every_steps": 4, "keep_last": 2},
    },
    "tensorboard": False,
    "resources": {"pool": "on-demand", "user": "alice"},
}
SPOT_PRICE, ON_DEMAND_PRICE = 0.03, 0.10  # $/h of a one-CPU share: spot at 70% off
# (pool, node, seconds, outcome, exit code, start step, last step, checkpoint step, steps redone, checkpoint s)
SPOT_HISTORY = [
    ("spot", "spot-a1f3c2", 600, "preempted", 75, 0, 8, 8, 0, 0.4),
    ("spot", "spot-b72e90", 300, "killed", None, 8, 14, 12, 2, 0.3),
    ("on-demand", "on-demand-c4d1aa", 900, "succeeded", 0, 12, 32, 32, 0, 1.1),
]
SPOT_DOLLARS = {"spot": 600 / 3600 * SPOT_PRICE + 300 / 3600 * SPOT_PRICE, "on-demand": 900 / 3600 * ON_DEMAND_PRICE}


@dataclass
class Queue:
    spot: str  # alice's, preempted twice on spot, then succeeded on on-demand
    running: str  # bob's, running on spot
    waiting_alice: str
    waiting_bob: str


def record_queue(hub, run_id: str) -> Queue:
    """The queue as the scheduler would have recorded it, every change through JobStore's public methods."""
    store = JobStore.open(hub)

    def submit(name: str, user: str, pool: str = "spot", priority: int = 0, workers: tuple[int, int] = (1, 1)):
        spec = {"pool": pool, "user": user, "max_preemptions": 2}
        return store.submit(
            name=name,
            user=user,
            priority=priority,
            pool=pool,
            workers_min=workers[0],
            workers_max=workers[1],
            cpus=1,
            retries=0,
            run_id=run_id,
            spec=spec,
        )

    spot = submit("digits-spot", "alice", priority=1)
    start = datetime.now(UTC) - timedelta(hours=1)
    log_lines = []
    for number, (pool, node, seconds, outcome, code, first, last, ckpt, redone, ckpt_s) in enumerate(SPOT_HISTORY, 1):
        job = store.get(spot.id)
        price = SPOT_PRICE if pool == "spot" else ON_DEMAND_PRICE
        fields = {"pool": pool, "nodes": [node], "workers": 1, "cpus": 1, "node_share": 1.0, "price_per_hour": price}
        attempt = store.place(job, fields, f"placed on {pool}: {node}, 1 worker(s)")
        assert attempt is not None
        store.update_attempt(attempt.id, state="running", handle={"pid": 1}, started_at=start)
        store.transition(spot.id, {"placed"}, "running", f"attempt {number} started")
        start += timedelta(seconds=seconds)
        store.update_attempt(
            attempt.id,
            state="ended",
            outcome=outcome,
            exit_code=code,
            ended_at=start,
            start_step=first,
            last_step=last,
            checkpoint_step=ckpt,
            steps_redone=redone,
            checkpoint_seconds=ckpt_s,
        )
        where = f"attempt {number} on {node}"
        log_lines += [f"--- {where} ({pool}) ---", f"resumed from step {first}", f"step {last}"]
        if outcome == "succeeded":
            store.transition(spot.id, {"running"}, "succeeded", f"{where} finished at step {last}")
            continue
        how = "checkpointed and exited 75" if outcome == "preempted" else "killed with its node"
        preemptions = store.get(spot.id).preemptions + 1
        store.transition(spot.id, {"running"}, "preempted", f"{where} {how} at step {last}", preemptions=preemptions)
        if preemptions < 2:
            store.transition(spot.id, {"preempted"}, "requeued", "requeued on spot; resumes from its last checkpoint")
        else:
            reason = "moved to on-demand: preempted 2 times (limit 2)"
            store.transition(spot.id, {"preempted"}, "requeued", reason, current_pool="on-demand")
    path = log_path(hub, spot.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(log_lines) + "\n")

    running = submit("bert-spot", "bob", workers=(1, 2))
    fields = {"pool": "spot", "nodes": ["spot-d9e011"], "workers": 1, "cpus": 1, "node_share": 1.0}
    attempt = store.place(store.get(running.id), {**fields, "price_per_hour": SPOT_PRICE}, "placed on spot")
    assert attempt is not None
    store.update_attempt(attempt.id, state="running", started_at=datetime.now(UTC) - timedelta(minutes=5))
    store.transition(running.id, {"placed"}, "running", "attempt 1 started")

    waiting_alice = submit("digits-queued", "alice", priority=5)
    waiting_bob = submit("mnist-queued", "bob", pool="on-demand")
    return Queue(spot.id, running.id, waiting_alice.id, waiting_bob.id)


def run_real_job(world, folder: Path, monkeypatch: pytest.MonkeyPatch, timeout: float = 400) -> str:
    """Submit the tiny job through ``oar.jobs.service`` and tick the local scheduler until it ends."""
    from oar.jobs.daemon import build
    from oar.jobs.service import submit

    # the attempt's processes open the hub from the environment
    monkeypatch.setenv("OAR_HOME", str(world.home))
    monkeypatch.setenv("OAR_DATABASE_URL", world.hub.url)
    path = folder / "tiny-job.yaml"
    path.write_text(yaml.safe_dump(TINY_JOB))
    job = submit(path, world.hub, POOLS)
    store, scheduler = JobStore.open(world.hub), build(world.hub, pools=POOLS)
    deadline = time.monotonic() + timeout
    while not store.get(job.id).done:
        assert time.monotonic() < deadline, "the tiny job did not finish in time"
        scheduler.tick()
        time.sleep(0.1)
    assert store.get(job.id).state == "succeeded", store.get(job.id).reason
    return job.id
