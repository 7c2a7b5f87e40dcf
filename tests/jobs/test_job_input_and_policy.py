"""Bad job files are refused at submission with one clear message; the spot → on-demand policy."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from jobs_helpers import JOB, write_job

import oar.jobs  # noqa: F401
from oar._core.errors import InvalidInputError, NotFoundError
from oar.hub import Hub
from oar.jobs.policy import Progress, next_pool
from oar.jobs.pools import Pool, Pools, load_pools
from oar.jobs.service import submit
from oar.jobs.store import JobStore

pytestmark = pytest.mark.timeout(120)
POOLS = Pools(
    pools={
        "on-demand": Pool(node_cpus=2, max_nodes=2),
        "spot": Pool(node_cpus=2, max_nodes=3, spot=True, spot_discount=0.6, notice_s=30),
    }
)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"pool": "gpu"}, "unknown pool 'gpu'; pools: on-demand, spot"),
        ({"pool": "spot", "workers": 3}, "pool 'spot' can never give more than 2 (one node of 2 CPUs)"),
        ({"workers": [3, 1]}, "1 <= MIN <= MAX"),
        ({"cpus": 3}, "can never give more than 0"),
        ({"poool": "spot"}, "resources.poool: unknown key"),
    ],
)
def test_bad_resources_are_refused_before_anything_is_recorded(tmp_path, resources, message):
    hub = Hub(tmp_path)
    with pytest.raises((InvalidInputError, NotFoundError), match=message.replace("(", r"\(").replace(")", r"\)")):
        submit(write_job(tmp_path, **resources), hub, POOLS)
    assert JobStore.open(hub).list() == [] and hub.runs.list() == []


def test_ray_jobs_may_spread_workers_over_the_nodes_of_a_pool(tmp_path):
    with pytest.raises(InvalidInputError, match=r"more than 6 \(3 nodes of 2 CPUs\)"):
        submit(write_job(tmp_path, pool="spot", workers=7), Hub(tmp_path), POOLS, spans_nodes=True)


def test_invalid_yaml_and_bad_training_sections_are_named(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(InvalidInputError, match="is not valid YAML"):
        submit(broken, Hub(tmp_path), POOLS)
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({**JOB, "trainer": {"epochs": 1, "lrr": 0.1}}))
    with pytest.raises(InvalidInputError, match=r"trainer\.lrr: unknown key"):
        submit(typo, Hub(tmp_path), POOLS)


def test_a_job_without_checkpoints_is_refused_because_it_could_not_resume(tmp_path):
    path = tmp_path / "nockpt.yaml"
    path.write_text(yaml.safe_dump({**JOB, "trainer": {**JOB["trainer"], "checkpoint": {"every_steps": None}}}))
    with pytest.raises(InvalidInputError, match=r"checkpoint\.every_steps"):
        submit(path, Hub(tmp_path), POOLS)


def test_a_bad_pools_file_is_one_message(tmp_path):
    path = tmp_path / "pools.yaml"
    path.write_text("pools:\n  spot: {spot: true, min_nodes: 5, max_nodes: 2}\n")
    with pytest.raises(InvalidInputError, match=r"min_nodes \(5\) is above max_nodes \(2\)"):
        load_pools(path)


@pytest.mark.slow
def test_the_cli_prints_one_red_line_and_exits_1(tmp_path):
    env = {**os.environ, "OAR_HOME": str(tmp_path)}
    path = write_job(tmp_path, pool="nowhere")
    result = subprocess.run(
        [sys.executable, "-m", "oar.cli.main", "jobs", "submit", str(path), "--no-start-scheduler"],
        capture_output=True,
        text=True,
        env=env,
        timeout=110,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "unknown pool 'nowhere'" in result.stderr


def _job(tmp_path, **resources):
    store = JobStore.open(Hub(tmp_path))
    spec = {"max_preemptions": resources.pop("max_preemptions", None)}
    return store.submit(name="j", user="ana", pool="spot", run_id="r", spec=spec, **resources)


def test_after_max_preemptions_the_job_moves_to_on_demand_and_says_why(tmp_path):
    job = _job(tmp_path, max_preemptions=2)
    assert next_pool(replace(job, preemptions=1), POOLS, Progress(), datetime.now(UTC)) == ("spot", None)
    pool, why = next_pool(replace(job, preemptions=2), POOLS, Progress(), datetime.now(UTC))
    assert pool == "on-demand" and why == "moved to on-demand: preempted 2 times (limit 2)"


def test_a_tight_deadline_moves_the_job_to_on_demand(tmp_path):
    moment = datetime.now(UTC)
    job = _job(tmp_path, deadline=moment + timedelta(seconds=200))
    slow = Progress(step=10, total_steps=110, seconds_per_step=1.5)  # 150 s of work x 1.5 + 30 s notice > 200 s
    fast = Progress(step=10, total_steps=110, seconds_per_step=0.5)  # 50 s x 1.5 + 30 s fits
    pool, why = next_pool(job, POOLS, slow, moment)
    assert pool == "on-demand" and "deadline in 200 s, about 150 s of work left" in why
    assert next_pool(job, POOLS, fast, moment) == ("spot", None)
    on_demand = replace(job, current_pool="on-demand")
    assert next_pool(on_demand, POOLS, slow, moment) == ("on-demand", None)  # never back to spot


def test_quotas_come_from_the_pools_file(tmp_path):
    from oar.jobs.daemon import build

    path = tmp_path / "pools.yaml"
    path.write_text("pools:\n  on-demand: {min_nodes: 1}\nquotas: {ana: 2}\ndefault_quota: 1\n")
    scheduler = build(Hub(tmp_path), pools=load_pools(path))
    assert scheduler.config.quotas == {"ana": 2} and scheduler.config.default_quota == 1
