"""Jobs on the local executor for real: subprocess attempts, preemptions, scheduler restarts, crashes.

Every job is the same tiny run (digits, 32 steps, a checkpoint every 4 steps); a run nobody interrupts
gives the reference weights, and a job preempted any number of times must end with the same bytes.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jobs_helpers import EVERY, STEPS, drive, write_job

import oar.jobs  # noqa: F401
from oar.hub import Hub
from oar.jobs.daemon import build
from oar.jobs.executors.local import LocalExecutor
from oar.jobs.ledger import run_cost
from oar.jobs.pools import Pool, Pools
from oar.jobs.preemption import ManualPreemptions
from oar.jobs.progress import read_progress
from oar.jobs.scheduler import Scheduler, job_dir
from oar.jobs.service import submit
from oar.jobs.store import JobStore

POOLS = Pools(
    pools={
        "on-demand": Pool(price_per_hour=0.10, min_nodes=2, max_nodes=2),
        "spot": Pool(price_per_hour=0.10, spot=True, spot_discount=0.7, notice_s=30, min_nodes=2, max_nodes=2),
    }
)


def _uninterrupted(home: Path, epochs: int = 2) -> bytes:
    """The weights of the job trained once, uninterrupted, in this process."""
    from oar.pipelines.train_job import execute, start_run
    from oar.train.job import load_job

    hub = Hub(home)
    os.environ["OAR_HOME"] = str(home)
    try:
        run = execute(start_run(load_job(write_job(home, epochs=epochs)), hub).id, hub, progress=False)
    finally:
        os.environ.pop("OAR_HOME", None)
    assert run.metrics["steps"] == STEPS * epochs // 2
    return Path(run.metrics["weights"]).read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> bytes:
    return _uninterrupted(tmp_path_factory.mktemp("reference"))


LONG_EPOCHS = 24  # 384 steps: wide windows for three preemptions however fast or slow the machine runs the steps


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory) -> bytes:
    return _uninterrupted(tmp_path_factory.mktemp("long-reference"), LONG_EPOCHS)


def _env(home: Path) -> None:
    os.environ["OAR_HOME"] = str(home)


def _weights(hub: Hub, run_id: str) -> bytes:
    return Path(hub.runs.get(run_id).metrics["weights"]).read_bytes()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_spot_preemptions_with_and_without_notice_end_in_the_weights_of_an_uninterrupted_run(tmp_path, long_reference):
    """Two notices (SIGTERM → checkpoint → 75) and one hard loss; then the limit moves the job to on-demand."""
    _env(tmp_path)
    hub = Hub(tmp_path)
    job = submit(write_job(tmp_path, epochs=LONG_EPOCHS, pool="spot", max_preemptions=3), hub, POOLS)
    source = ManualPreemptions()
    scheduler = build(hub, pools=POOLS, preemptions=source)
    store = JobStore.open(hub)
    plan = [(6, 40.0), (120, 0.0), (240, 40.0)]  # (at or after step, notice seconds); 0: the node just vanishes

    def preempt() -> None:
        running = [a for a in store.attempts(job.id, states=("running",)) if not a.handle.get("stop")]
        if not plan or not running:
            return
        step = read_progress(job_dir(hub, job.id) / f"attempt-{running[0].number}" / "progress.json").get("step", 0)
        at, notice = plan[0]
        if step >= at and (notice > 0 or step % EVERY):  # a hard loss between checkpoints loses work
            source.preempt(running[0].nodes[0], notice, "test preemption")
            plan.pop(0)

    drive(scheduler, lambda: store.get(job.id).done, 800, preempt)
    job = store.get(job.id)
    assert job.state == "succeeded", job.reason
    assert _weights(hub, job.run_id) == long_reference
    attempts = store.attempts(job.id)
    assert [a.outcome for a in attempts] == ["preempted", "killed", "preempted", "succeeded"]
    assert [a.pool for a in attempts] == ["spot", "spot", "spot", "on-demand"]
    killed = attempts[1]
    # at most one checkpoint interval is lost (all of it when the node goes while that checkpoint is being written)
    assert 0 <= killed.steps_redone <= EVERY and killed.steps_redone == killed.last_step - killed.checkpoint_step
    for before, after in itertools.pairwise(attempts):
        assert after.start_step == before.checkpoint_step  # each resume starts at the newest checkpoint
    for preempted in (attempts[0], attempts[2]):
        assert preempted.exit_code == 75 and preempted.checkpoint_step == preempted.last_step  # nothing lost
    states = [e.state for e in job.events]
    assert states.count("preempted") == 3 and states.count("requeued") == 3 and states[-1] == "succeeded"
    assert any("moved to on-demand: preempted 3 times" in e.reason for e in job.events)
    cost = run_cost(hub, job.run_id)
    assert cost.preemptions == 3 and cost.steps_redone == killed.steps_redone
    assert set(cost.dollars_by_pool) == {"spot", "on-demand"} and cost.checkpoint_seconds > 0
    spot = sum(a.seconds() for a in attempts if a.pool == "spot")
    assert cost.dollars_by_pool["spot"] == pytest.approx(spot / 3600 * 0.10 * 0.3, rel=1e-6)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_scheduler_killed_with_sigkill_and_restarted_loses_no_job_and_starts_none_twice(tmp_path):
    _env(tmp_path)
    hub = Hub(tmp_path)
    (tmp_path / "pools.yaml").write_text(
        "pools:\n  on-demand: {min_nodes: 2, max_nodes: 2}\n  spot: {spot: true, spot_discount: 0.5}\n"
    )
    env = {**os.environ, "OAR_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    jobs = [submit(write_job(tmp_path, f"job{i}.yaml"), hub, POOLS) for i in range(2)]
    store = JobStore.open(hub)

    def daemon() -> subprocess.Popen:
        command = [sys.executable, "-m", "oar.jobs.daemon", "--idle-exit", "2"]
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    first = daemon()
    deadline = time.monotonic() + 300
    while not all(store.get(j.id).state == "running" for j in jobs):
        assert time.monotonic() < deadline and first.poll() is None, first.stdout.read().decode()
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    time.sleep(1)
    second = daemon()
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output.decode()
    for job in jobs:
        job = store.get(job.id)
        assert job.state == "succeeded", job.reason
        assert [(a.number, a.outcome) for a in store.attempts(job.id)] == [(1, "succeeded")]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_attempts_a_scheduler_left_half_started_are_started_exactly_once_after_a_restart(tmp_path, reference):
    """A: claimed, never started (given up, then run as attempt 2). B: started, never recorded (adopted)."""
    _env(tmp_path)
    hub = Hub(tmp_path)
    a, b = (submit(write_job(tmp_path, f"{n}.yaml"), hub, POOLS) for n in "ab")
    first = Scheduler(hub, POOLS, LocalExecutor(), build(hub, pools=POOLS).inventory)
    first._autoscale()  # the nodes exist
    nodes = [n.id for n in first.inventory.nodes() if n.pool == "on-demand"]
    store = JobStore.open(hub)
    fields = {"pool": "on-demand", "workers": 1, "cpus": 1, "node_share": 1.0, "price_per_hour": 0.1}
    store.place(a, {**fields, "nodes": [nodes[0]]}, "placed")
    attempt_b = store.place(b, {**fields, "nodes": [nodes[1]]}, "placed")
    first.executor.start(first._launch(store.get(b.id), attempt_b))  # ... and the scheduler dies here
    owner = job_dir(hub, b.id) / "attempt-1" / "owner"
    deadline = time.monotonic() + 120
    while not owner.exists():  # B's wrapper got going before the restart (else it is given up, like A)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = build(hub, pools=POOLS)
    assert [x.outcome for x in store.attempts(a.id)] == ["abandoned"] and store.get(a.id).state == "requeued"
    assert store.get(b.id).state == "running"
    drive(second, lambda: store.get(a.id).done and store.get(b.id).done, 800)
    assert [(x.number, x.outcome) for x in store.attempts(a.id)] == [(1, "abandoned"), (2, "succeeded")]
    assert [(x.number, x.outcome) for x in store.attempts(b.id)] == [(1, "succeeded")]
    assert _weights(hub, a.run_id) == _weights(hub, b.run_id) == reference
    assert (job_dir(hub, a.id) / "attempt-1" / "owner").read_text() == "abandoned"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_crashing_job_is_retried_as_configured_then_fails_with_its_exit_code_and_log_tail(tmp_path):
    _env(tmp_path)
    hub = Hub(tmp_path)
    path = write_job(tmp_path, pool="on-demand", retries=1)
    text = path.read_text().replace("device: cpu", "device: cuda")  # valid YAML, fails once training starts
    path.write_text(text if "device: cuda" in text else text.replace("trainer:\n", "trainer:\n  device: cuda\n"))
    job = submit(path, hub, POOLS)
    store = JobStore.open(hub)
    drive(build(hub, pools=POOLS), lambda: store.get(job.id).done, 500)
    job = store.get(job.id)
    assert job.state == "failed" and job.failures == 2
    assert [a.outcome for a in store.attempts(job.id)] == ["failed", "failed"]
    assert "failed with exit code 1; retry 1 of 1" in next(e.reason for e in job.events if e.state == "requeued")
    assert "exit code 1; log tail:" in job.reason and "CUDA" in job.reason


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cancelling_a_running_job_checkpoints_and_stops_it(tmp_path):
    from oar.jobs.service import cancel

    _env(tmp_path)
    hub = Hub(tmp_path)
    job = submit(write_job(tmp_path, pool="on-demand"), hub, POOLS)
    store = JobStore.open(hub)
    scheduler = build(hub, pools=POOLS)

    def started() -> bool:
        return read_progress(job_dir(hub, job.id) / "attempt-1" / "progress.json").get("step", 0) >= 2

    drive(scheduler, started, 400)
    assert cancel(job.id, hub).cancel_requested
    drive(scheduler, lambda: store.get(job.id).done, 200)
    job = store.get(job.id)
    (attempt,) = store.attempts(job.id)
    assert job.state == "cancelled" and attempt.outcome == "cancelled" and attempt.exit_code == 75
    assert attempt.checkpoint_step == attempt.last_step < STEPS


class SchedulerKilled(BaseException):
    """Stands for ``kill -9`` of the scheduler between two of its database writes."""


def _step(hub: Hub, job_id: str, number: int) -> int:
    return int(read_progress(job_dir(hub, job_id) / f"attempt-{number}" / "progress.json").get("step", 0))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _gone_within(pid: int, seconds: float) -> bool:
    from oar.jobs.executors.attempt_process import start_time

    deadline = time.monotonic() + seconds
    while start_time(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


STOP_POINTS = {  # each write of placing, starting, finishing and preempting an attempt: the outcomes it may leave
    "placed": [["abandoned", "succeeded"]],
    "started": [["succeeded"], ["abandoned", "succeeded"]],  # the attempt's parent may or may not have begun
    "attempt-running": [["succeeded"]],
    "job-running": [["succeeded"]],
    "attempt-ended": [["succeeded"]],
    "preempted": [["preempted", "succeeded"]],
}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_scheduler_killed_between_any_two_writes_is_settled_by_the_next_one(tmp_path, reference):
    """One job per stop point; a scheduler stops at one job's point, a fresh one recovers and goes on."""
    from oar.jobs.executors.local import LocalInventory

    _env(tmp_path)
    hub = Hub(tmp_path)
    store = JobStore.open(hub)
    jobs = {p: submit(write_job(tmp_path, f"{p}.yaml", pool="on-demand"), hub, POOLS) for p in STOP_POINTS}
    # the preempted one trains long enough for its notice to find it training, however fast the machine
    jobs["preempted"] = submit(write_job(tmp_path, "preempted.yaml", pool="spot", epochs=12), hub, POOLS)
    plan = {job.id: point for point, job in jobs.items()}
    source = ManualPreemptions()

    def crash(at: str, job_id: str) -> None:
        if plan.get(job_id) == at:
            del plan[job_id]
            raise SchedulerKilled(at)

    def notice() -> None:  # the "preempted" write needs a preemption
        job = jobs["preempted"]
        running = [a for a in store.attempts(job.id, states=("running",)) if not a.handle.get("stop")]
        if running and running[0].number == 1 and _step(hub, job.id, 1) >= 2:
            source.preempt(running[0].nodes[0], 30.0, "test preemption")

    stops = 0
    while not all(store.get(j.id).done for j in jobs.values()):
        scheduler = Scheduler(hub, POOLS, LocalExecutor(), LocalInventory(store), source, after_write=crash)
        try:  # a fresh scheduler, as after a restart: recover() settles the jobs before its first tick
            drive(scheduler, lambda: all(store.get(j.id).done for j in jobs.values()), 600, notice)
        except SchedulerKilled:
            stops += 1
    assert stops == len(STOP_POINTS) and not plan
    for point, job in jobs.items():
        job = store.get(job.id)
        assert job.state == "succeeded", (point, job.reason)
        assert [a.outcome for a in store.attempts(job.id)] in STOP_POINTS[point], point
        assert hub.runs.get(job.run_id).status == "finished", point
        if point != "preempted":
            assert _weights(hub, job.run_id) == reference, point
    assert hub.runs.get(jobs["preempted"].run_id).metrics["steps"] == STEPS * 6


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_attempt_parent_killed_with_sigkill_takes_its_trainer_with_it_and_the_job_resumes(tmp_path):
    _env(tmp_path)
    hub = Hub(tmp_path)
    job = submit(write_job(tmp_path, pool="on-demand", epochs=12), hub, POOLS)  # 192 steps: still training after
    store = JobStore.open(hub)
    scheduler = build(hub, pools=POOLS)
    drive(scheduler, lambda: _step(hub, job.id, 1) >= 2, 300)
    wrapper = int((job_dir(hub, job.id) / "attempt-1" / "pid").read_text().split()[0])
    (trainer,) = _children(wrapper)
    os.kill(wrapper, signal.SIGKILL)
    assert _gone_within(trainer, 2), "the trainer outlived its attempt's parent"
    drive(scheduler, lambda: store.get(job.id).done, 400)
    job = store.get(job.id)
    assert job.state == "succeeded", job.reason
    attempts = store.attempts(job.id)
    assert [a.outcome for a in attempts] == ["lost", "succeeded"]
    assert attempts[1].start_step == attempts[0].checkpoint_step < attempts[0].last_step + 1
    assert hub.runs.get(job.run_id).metrics["steps"] == STEPS * 6


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_trainer_waits_while_another_process_holds_its_run_folder(tmp_path):
    from oar.pipelines.train_job import run_dir, start_run
    from oar.train.folder_lock import FolderLock
    from oar.train.job import load_job

    _env(tmp_path)
    hub = Hub(tmp_path)
    run = start_run(load_job(write_job(tmp_path)), hub)
    folder = run_dir(hub, run.id)
    env = {**os.environ, "OAR_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "oar.pipelines.train_job", run.id]
    with FolderLock(folder):  # a stale trainer of the same run, still alive
        second = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        assert second.stderr is not None
        waited = ""
        for line in second.stderr:
            waited += line
            if "still trains in" in line:
                break
        assert f"waiting for pid {os.getpid()}" in waited, waited
        time.sleep(1.0)
        assert second.poll() is None and not (folder / "checkpoints").exists()  # nothing written while held
    _, rest = second.communicate(timeout=240)
    assert second.returncode == 0, rest
    assert Hub(tmp_path).runs.get(run.id).status == "finished"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("moment", ["before-its-pid", "after-its-pid", "while-training"])
def test_a_notice_at_any_moment_of_start_up_stops_the_attempt(tmp_path, moment):
    """terminate() right after start (no pid yet), once the parent's pid is written, and in training."""
    from oar.jobs.executors.base import Launch
    from oar.pipelines.train_job import start_run
    from oar.train.job import load_job

    _env(tmp_path)
    hub = Hub(tmp_path)
    run = start_run(load_job(write_job(tmp_path, epochs=12)), hub)  # 192 steps: still training when signalled
    directory = tmp_path / "attempt"
    launch = Launch("a-1", run.id, 1, 1, "spot", ("n",), directory, tmp_path / "log.txt", {"OAR_HOME": str(tmp_path)})
    executor = LocalExecutor()
    handle = executor.start(launch)
    deadline = time.monotonic() + 120
    if moment == "before-its-pid":
        assert not (directory / "pid").exists()
    while moment == "after-its-pid" and not (directory / "pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.005)
    while moment == "while-training" and read_progress(directory / "progress.json").get("step", 0) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    executor.terminate(handle)
    stopped = time.monotonic()
    while (status := executor.poll(handle)).running:
        assert time.monotonic() - stopped < 30, "the attempt trained through its notice"
        time.sleep(0.05)
    # 75: checkpointed and exited; 143: stopped before training could begin (nothing to save)
    expected = {"before-its-pid": {143}, "after-its-pid": {75, 143}, "while-training": {75}}[moment]
    assert status.exit_code in expected, status
    assert read_progress(directory / "progress.json").get("step", 0) < STEPS * 6


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_replacement_that_dies_in_start_up_leaves_the_killed_attempts_lost_work_as_it_was(tmp_path):
    _env(tmp_path)
    hub = Hub(tmp_path)
    job = submit(write_job(tmp_path, pool="spot", epochs=12), hub, POOLS)  # 192 steps: room to lose a node in
    store = JobStore.open(hub)
    source = ManualPreemptions()

    def lose_nodes() -> None:
        running = [a for a in store.attempts(job.id, states=("running",)) if not a.handle.get("stop")]
        if not running:
            return
        attempt = running[0]
        step = _step(hub, job.id, attempt.number)
        progress = job_dir(hub, job.id) / f"attempt-{attempt.number}" / "progress.json"
        if (attempt.number == 1 and step >= 6 and step % EVERY) or (attempt.number == 2 and not progress.exists()):
            source.preempt(attempt.nodes[0], 0.0, "test node loss")

    drive(build(hub, pools=POOLS, preemptions=source), lambda: store.get(job.id).done, 400, lose_nodes)
    job = store.get(job.id)
    assert job.state == "succeeded", job.reason
    first, replacement, last = store.attempts(job.id)
    assert [first.outcome, replacement.outcome, last.outcome] == ["killed", "killed", "succeeded"]
    # the replacement trained nothing: recorded at the checkpoint known then, nothing redone after it
    assert replacement.start_step == replacement.last_step <= last.start_step and replacement.steps_redone == 0
    # the killed attempt is billed the steps past the checkpoint actually resumed from (a checkpoint it wrote
    # just before the kill may be newer than its progress file said), never its whole count
    assert 0 <= first.steps_redone <= EVERY and first.steps_redone == first.last_step - last.start_step
    assert run_cost(hub, job.run_id).steps_redone == first.steps_redone
    assert any(f"killed with its node at step {first.last_step}, " in e.reason for e in job.events)
    assert hub.runs.get(job.run_id).metrics["steps"] == STEPS * 6


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_trainer_killed_like_out_of_memory_fails_its_job_and_its_run_with_a_clear_reason(tmp_path):
    from oar.jobs.scheduler import log_path, log_tail

    _env(tmp_path)
    hub = Hub(tmp_path)
    job = submit(write_job(tmp_path, pool="on-demand", epochs=12), hub, POOLS)  # still training when killed
    store = JobStore.open(hub)
    scheduler = build(hub, pools=POOLS)
    drive(scheduler, lambda: _step(hub, job.id, 1) >= 2, 300)
    wrapper = int((job_dir(hub, job.id) / "attempt-1" / "pid").read_text().split()[0])
    (trainer,) = _children(wrapper)
    os.kill(trainer, signal.SIGKILL)
    drive(scheduler, lambda: store.get(job.id).done, 120)
    job = store.get(job.id)
    assert job.state == "failed" and "killed by signal 9 (SIGKILL, e.g. out of memory)" in job.reason
    assert ("; no output" in job.reason) == (log_tail(log_path(hub, job.id), 15, attempt=1) == "")
    run = hub.runs.get(job.run_id)
    assert run.status == "failed" and "SIGKILL" in run.metrics["error"]
