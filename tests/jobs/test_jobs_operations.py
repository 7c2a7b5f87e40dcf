"""Operating jobs: where notices come from, one-line messages, what `show` and `list` say, one scheduler."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from jobs_helpers import JOB, write_job

import oar.jobs  # noqa: F401
from oar._core.errors import InvalidInputError
from oar.cli.jobs_commands import _failures, reason_line
from oar.hub import Hub
from oar.jobs.executors.base import NodeView
from oar.jobs.notices import CombinedNotices, HostCloudNotices, NoticeInbox, preemption_source, send_notice
from oar.jobs.pools import Pools, default_pools
from oar.jobs.preemption import PoissonPreemptions
from oar.jobs.scheduler import _preempted_how
from oar.jobs.service import submit
from oar.jobs.store import JobStore

pytestmark = pytest.mark.timeout(120)
DOCS_POOLS = {  # the pools file of docs/jobs.md
    "pools": {
        "on-demand": {"node_type": "m7i.large", "node_cpus": 2, "price_per_hour": 0.1008, "min_nodes": 1},
        "spot": {
            "node_type": "m7i.large",
            "node_cpus": 2,
            "price_per_hour": 0.1008,
            "spot": True,
            "spot_discount": 0.65,
            "notice_s": 120,
            "preemptions_per_hour": 0.05,
            "min_nodes": 0,
            "max_nodes": 8,
        },
    }
}


def test_a_preempted_attempt_that_exited_143_is_not_said_to_have_checkpointed():
    assert _preempted_how(75) == "checkpointed and exited 75"
    said = _preempted_how(143)
    assert "exit 143" in said and "its last checkpoint stands" in said and "checkpointed" not in said


def test_retries_are_shown_as_used_of_allowed_not_failures_over_retries():
    assert _failures(0, 0) == "retries 0 of 0 used"
    assert _failures(1, 0) == "retries 0 of 0 used, 1 crash with none left"
    assert _failures(2, 3) == "retries 2 of 3 used"


def test_list_shows_the_error_line_of_a_failure_not_just_log_tail():
    reason = "attempt 1 on od-1 failed with exit code 1; log tail:\nTraceback\n  File x\nValueError: bad lr\n\n"
    assert reason_line(reason) == "attempt 1 on od-1 failed with exit code 1: ValueError: bad lr"
    assert reason_line("requeued on spot") == "requeued on spot"


def test_a_model_level_resources_error_names_resources_not_an_empty_path(tmp_path):
    with pytest.raises(InvalidInputError) as caught:
        submit(write_job(tmp_path, workers=[3, 1]), Hub(tmp_path), default_pools())
    assert "resources: workers must be" in str(caught.value) and "resources.:" not in str(caught.value)


def test_invalid_yaml_is_one_line_with_its_position(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ndata: [unclosed\n")
    with pytest.raises(InvalidInputError) as caught:
        submit(broken, Hub(tmp_path), default_pools())
    message = str(caught.value)
    assert "\n" not in message and "is not valid YAML: line 3, column 1:" in message


def test_a_deadline_in_the_past_is_refused_and_a_future_one_accepted(tmp_path):
    hub = Hub(tmp_path)
    with pytest.raises(InvalidInputError, match=r"resources\.deadline .* is already past"):
        submit(write_job(tmp_path, pool="spot", deadline="2026-12-03T18:00:00Z"), hub, default_pools())
    assert JobStore.open(hub).list() == []
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert submit(write_job(tmp_path, pool="spot", deadline=future), hub, default_pools()).deadline is not None


def test_the_readme_command_fits_the_default_pools(tmp_path):
    """`oar jobs submit job.yaml --pool spot --workers 2` with no pools file."""
    job = submit(write_job(tmp_path), Hub(tmp_path), default_pools(), {"pool": "spot", "workers": (2, 2)})
    assert (job.pool, job.workers_min, job.workers_max) == ("spot", 2, 2)


def test_oar_train_accepts_a_job_file_with_resources(tmp_path):
    from oar.train.job import load_job

    path = write_job(tmp_path, pool="spot", workers=[1, 2], max_preemptions=3)
    assert load_job(path).name == JOB["name"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**JOB, "resources": [1, 2]}))
    with pytest.raises(InvalidInputError, match="resources must be a mapping"):
        load_job(bad)


def test_simulated_notices_have_a_floor_so_a_checkpoint_fits(tmp_path):
    """The docs' pools at the docs' speed-up: 120 s / 3600 would be 33 ms, every preemption a hard kill."""
    pools = Pools.model_validate(DOCS_POOLS)
    source = preemption_source("simulate", pools, tmp_path, "local", speedup=3600, seed=1)
    assert isinstance(source, CombinedNotices)
    simulator = source.sources[0]
    assert isinstance(simulator, PoissonPreemptions)
    clock = [0.0]
    simulator.clock, simulator._last = (lambda: clock[0]), 0.0
    notices = []
    for _ in range(200):
        clock[0] += 1.0
        notices += simulator.poll([NodeView("spot-1", "spot", 2)])
    assert notices and all(n.notice_s >= 10.0 for n in notices)


def test_the_mode_is_checked_and_cloud_needs_a_provider(tmp_path):
    pools = default_pools()
    with pytest.raises(InvalidInputError, match="needs --simulate-preemptions"):
        preemption_source("simulate", pools, tmp_path, "local")
    with pytest.raises(InvalidInputError, match="needs --cloud, one of: aws, gcp, azure"):
        preemption_source("cloud", pools, tmp_path, "local")
    cloud = preemption_source("cloud", pools, tmp_path, "local", provider="gcp", endpoint="http://127.0.0.1:9")
    assert isinstance(cloud.sources[0], HostCloudNotices) and isinstance(cloud.sources[1], NoticeInbox)
    assert isinstance(preemption_source("manual", pools, tmp_path, "local"), NoticeInbox)


def test_an_operator_notice_is_read_once_by_the_scheduler_of_its_cluster(tmp_path):
    send_notice(tmp_path, "local", "spot-1", 30.0, "preempted by operator")
    assert NoticeInbox(tmp_path, "ray://head:10001").poll([]) == []
    inbox = NoticeInbox(tmp_path, "local")
    [notice] = inbox.poll([])
    assert (notice.node_id, notice.notice_s, notice.reason) == ("spot-1", 30.0, "preempted by operator")
    assert inbox.poll([]) == []


def _oar(home, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "oar.cli.main", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_preempt_names_what_it_cannot_preempt(tmp_path):
    missing = _oar(tmp_path, "jobs", "preempt", "nope")
    assert missing.returncode == 1 and "'nope' is neither a node nor a job" in missing.stderr
    assert "Traceback" not in missing.stderr
    job = submit(write_job(tmp_path), Hub(tmp_path), default_pools())
    waiting = _oar(tmp_path, "jobs", "preempt", job.id)
    assert waiting.returncode == 1 and f"job {job.id} is queued: it holds no node to preempt" in waiting.stderr


def test_the_pools_option_exists_where_the_docs_name_it(tmp_path):
    path = tmp_path / "pools.yaml"
    path.write_text(yaml.safe_dump(DOCS_POOLS))
    shown = _oar(tmp_path, "jobs", "pools", "--pools", str(path))
    assert shown.returncode == 0 and "m7i.large" in shown.stdout and "0-8" in shown.stdout


def _daemon(home, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OAR_HOME": str(home)}
    command = [sys.executable, "-m", "oar.jobs.daemon", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_lock(home) -> None:
    lock = home / "jobs" / "scheduler-local.lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text().strip()):
        assert time.monotonic() < deadline, "no scheduler took the lock"
        time.sleep(0.2)


def test_a_foreground_scheduler_takes_over_from_the_background_one_and_a_second_is_refused(tmp_path):
    Hub(tmp_path)
    background = _daemon(tmp_path, "--idle-exit", "120", "--background")
    try:
        _wait_for_lock(tmp_path)
        foreground = _daemon(tmp_path, "--preemptions", "manual", "--idle-exit", "20")
        deadline = time.monotonic() + 60
        while (tmp_path / "jobs" / "scheduler-local.lock").read_text().strip() != str(foreground.pid):
            assert time.monotonic() < deadline, "the foreground scheduler did not take over"
            time.sleep(0.2)
        assert background.wait(timeout=30) == 0
        second = _daemon(tmp_path, "--idle-exit", "1")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert f"already runs on {tmp_path} (pid {foreground.pid})" in err and f"kill {foreground.pid}" in err
        foreground.terminate()
        out, _ = foreground.communicate(timeout=30)
        assert foreground.returncode == 0 and f"stopped the background scheduler (pid {background.pid})" in out
    finally:
        for process in (background, locals().get("foreground")):
            if process is not None and process.poll() is None:
                process.kill()


def _spot_job(tmp_path, preemptions: int, **spec):
    store = JobStore.open(Hub(tmp_path))
    job = store.submit(name="j", user="ana", pool="spot", run_id="r", spec=spec)
    return replace(job, preemptions=preemptions)


def test_restarts_that_waste_more_than_the_spot_discount_move_the_job_to_on_demand(tmp_path):
    """The measured short-job case: restarts of about 6 s each, at a rate that eats the 65% discount."""
    from oar.jobs.policy import Progress, next_pool, restart_waste

    pools = default_pools()  # spot at 35% of the price
    moment = datetime.now(UTC)
    # 8 preemptions in 60 s on spot, 6 s of start-up each: 80% of the spot time went to start-ups
    costly = Progress(step=20, total_steps=32, seconds_per_step=0.5, startup_s=6.0, spot_seconds=60.0)
    assert restart_waste(8, costly) == pytest.approx(0.8)
    pool, why = next_pool(_spot_job(tmp_path, 8), pools, costly, moment)
    assert pool == "on-demand"
    assert why == (
        "moved to on-demand: restarts waste 80% of its spot time (8 preemptions in 60 s, 6.0 s lost each: "
        "start-up 6.0 s), more than the 65% spot discount"
    )
    # the same restarts over 10 minutes of spot: 8% wasted, spot still far cheaper
    cheap = replace(costly, spot_seconds=600.0)
    assert next_pool(_spot_job(tmp_path, 8), pools, cheap, moment) == ("spot", None)
    # steps redone after hard losses count as waste too: 3 x (2 s + 40 s / 3) over 60 s
    redone = Progress(startup_s=2.0, spot_seconds=60.0, redone_seconds=40.0)
    assert restart_waste(3, redone) == pytest.approx(3 / 60 * (2.0 + 40.0 / 3))
    assert next_pool(_spot_job(tmp_path, 3), pools, redone, moment)[0] == "on-demand"


def test_too_few_preemptions_or_no_measured_start_up_never_move_a_job(tmp_path):
    from oar.jobs.policy import Progress, next_pool

    pools, moment = default_pools(), datetime.now(UTC)
    two = Progress(startup_s=30.0, spot_seconds=40.0)  # would be 150% waste, but two preemptions are no rate
    assert next_pool(_spot_job(tmp_path, 2), pools, two, moment) == ("spot", None)
    unmeasured = Progress(startup_s=None, spot_seconds=40.0)
    assert next_pool(_spot_job(tmp_path, 5), pools, unmeasured, moment) == ("spot", None)
    off = Progress(startup_s=30.0, spot_seconds=40.0)
    assert next_pool(_spot_job(tmp_path, 5, restart_waste_policy=False), pools, off, moment) == ("spot", None)


def test_start_up_per_attempt_is_measured_from_the_attempts_history(tmp_path):
    import json

    from oar.jobs.entities import Attempt
    from oar.jobs.scheduler import job_dir, restart_history

    hub = Hub(tmp_path)
    begun = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC)
    attempts = []
    for number, (startup, seconds, redone) in enumerate([(5.0, 20.0, 0), (7.0, 30.0, 4)], start=1):
        started = begun + timedelta(minutes=number)
        folder = job_dir(hub, "job1") / f"attempt-{number}"
        folder.mkdir(parents=True)
        (folder / "progress.json").write_text(json.dumps({"fit_started_at": started.timestamp() + startup}))
        attempts.append(_attempt(Attempt, number, started, seconds, redone))
    job = _spot_job(tmp_path, 2)
    history = restart_history(hub, replace(job, id="job1"), attempts, default_pools(), 0.5)
    assert history == {"startup_s": pytest.approx(6.0), "spot_seconds": pytest.approx(50.0), "redone_seconds": 2.0}


def _attempt(cls, number, started, seconds, redone):
    return cls(
        id=f"job1-{number}",
        job_id="job1",
        number=number,
        state="ended",
        pool="spot",
        nodes=("spot-1",),
        workers=1,
        cpus=1,
        node_share=1.0,
        price_per_hour=0.035,
        handle={},
        outcome="preempted",
        exit_code=75,
        start_step=0,
        last_step=10,
        checkpoint_step=10,
        steps_redone=redone,
        checkpoint_seconds=0.0,
        started_at=started,
        ended_at=started + timedelta(seconds=seconds),
    )


def test_scheduler_settings_that_cannot_work_are_one_line_and_exit_2(tmp_path):
    wrong = _daemon(tmp_path, "--preemptions", "cloud")
    _, err = wrong.communicate(timeout=60)
    assert wrong.returncode == 2 and err == "error: --preemptions cloud needs --cloud, one of: aws, gcp, azure\n"
