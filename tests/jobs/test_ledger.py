"""The ledger's sums over recorded attempts: per pool, per run, and per model version through its lineage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import oar.jobs  # noqa: F401
from oar.hub import Hub
from oar.hub.orm import ModelRow
from oar.jobs.ledger import model_cost, run_cost, serving_cost_per_million
from oar.jobs.pools import Pool
from oar.jobs.store import JobStore

pytestmark = pytest.mark.timeout(60)
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SPOT = Pool(price_per_hour=0.20, spot=True, spot_discount=0.75, node_cpus=2)
ON_DEMAND = Pool(price_per_hour=0.20, node_cpus=2)


def _attempt(store, job, pool_name, pool, workers, seconds, outcome, steps, redone=0, start_at=T0):
    fields = {
        "pool": pool_name,
        "nodes": ["n"] * workers,
        "workers": workers,
        "cpus": 1,
        "node_share": workers / pool.node_cpus,
        "price_per_hour": pool.share_price_per_hour(1) * workers,
    }
    attempt = store.place(store.get(job.id), fields, "placed")
    store.transition(job.id, {"placed"}, "running", "started")
    store.update_attempt(
        attempt.id,
        state="ended",
        outcome=outcome,
        started_at=start_at,
        ended_at=start_at + timedelta(seconds=seconds),
        start_step=steps[0],
        last_step=steps[1],
        checkpoint_step=steps[1] - redone,
        steps_redone=redone,
        checkpoint_seconds=1.5,
    )
    if outcome != "succeeded":
        store.transition(job.id, {"running"}, "preempted", "preempted")
        store.transition(job.id, {"preempted"}, "requeued", "requeued")


def test_a_run_costs_its_attempts_node_share_times_time_times_price(tmp_path):
    hub = Hub(tmp_path)
    run = hub.runs.start("train", {})
    store = JobStore.open(hub)
    job = store.submit(name="j", user="ana", pool="spot", run_id=run.id, spec={})
    _attempt(store, job, "spot", SPOT, 2, 3600, "killed", (0, 100), redone=20)  # 1 node-hour at $0.05
    _attempt(store, job, "spot", SPOT, 1, 1800, "preempted", (80, 150))  # 0.25 node-hours at $0.05
    _attempt(store, job, "on-demand", ON_DEMAND, 2, 1800, "succeeded", (150, 300))  # 0.5 node-hours at $0.20
    cost = run_cost(hub, run.id)
    assert cost.dollars_by_pool == pytest.approx({"spot": 0.05 + 0.0125, "on-demand": 0.10})
    assert cost.dollars == pytest.approx(0.1625) and cost.node_seconds == pytest.approx(3600 + 900 + 1800)
    assert cost.preemptions == 2 and cost.steps_redone == 20 and cost.checkpoint_seconds == pytest.approx(4.5)
    assert cost.wasted_dollars == pytest.approx(0.05 * 20 / 100)  # the killed attempt's cost per step x redone

    hub.models.insert(ModelRow(name="m", version=1, digest="d", task="t", run_id=run.id, manifest={}))
    assert model_cost(hub, "m", 1)[0] == run.id and model_cost(hub, "m")[1].dollars == pytest.approx(0.1625)


def test_serving_cost_is_node_hours_over_requests_per_million():
    # $0.36 an hour for 10 s is $0.001; over 1,000 requests that is $1 per million
    assert serving_cost_per_million(0.36, 1_000, 10.0) == pytest.approx(1.0)
    assert serving_cost_per_million(0.36, 0, 10.0) is None  # no request answered: no figure
