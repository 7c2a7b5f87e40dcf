"""The queue's state machine on a real SQLite hub: compare-and-set moves, history, order, one claim."""

from __future__ import annotations

import pytest

import oar.jobs  # noqa: F401
from oar._core.errors import NotFoundError, OarError
from oar.hub import Hub
from oar.jobs.store import JobStore

pytestmark = pytest.mark.timeout(60)


def _submit(store: JobStore, name: str, priority: int = 0, user: str = "ana"):
    return store.submit(name=name, user=user, priority=priority, pool="spot", run_id=f"run-{name}", spec={})


@pytest.fixture
def store(tmp_path) -> JobStore:
    return JobStore.open(Hub(tmp_path))


def test_a_move_happens_once_and_is_written_into_the_history(store):
    job = _submit(store, "a")
    assert store.transition(job.id, {"queued"}, "cancelled", "by ana") is not None
    assert store.transition(job.id, {"queued"}, "cancelled", "again") is None  # someone moved it first
    job = store.get(job.id)
    assert job.state == "cancelled" and job.finished_at is not None and job.version == 1
    assert [(e.state, e.reason) for e in job.events] == [("queued", "submitted by ana"), ("cancelled", "by ana")]


def test_a_move_the_state_machine_does_not_allow_is_refused(store):
    job = _submit(store, "a")
    with pytest.raises(OarError, match="no transition queued → succeeded"):
        store.transition(job.id, {"queued"}, "succeeded", "skipping the queue")


def test_waiting_jobs_come_by_priority_then_submission(store):
    low, high, later_high = _submit(store, "low"), _submit(store, "high", 5), _submit(store, "later", 5)
    assert [j.id for j in store.waiting()] == [high.id, later_high.id, low.id]


def test_a_job_is_claimed_by_one_placement_only(store):
    job = _submit(store, "a")
    fields = {"pool": "spot", "nodes": ["n1"], "workers": 1, "cpus": 1, "node_share": 1.0, "price_per_hour": 0.1}
    first = store.place(job, fields, "placed")
    second = store.place(job, fields, "placed again")  # a second scheduler holding the same stale view
    assert first is not None and first.id == f"{job.id}-1" and second is None
    assert [a.id for a in store.attempts(job.id)] == [first.id]
    assert store.get(job.id).state == "placed"


def test_a_job_is_found_by_a_unique_prefix_and_a_missing_one_says_where_to_look(store):
    job = _submit(store, "a")
    assert store.get(job.id[:6]).id == job.id
    with pytest.raises(NotFoundError, match="oar jobs list"):
        store.get("nope")


def test_the_tables_live_in_the_hub_database(tmp_path):
    hub = Hub(tmp_path)
    store = JobStore.open(hub)
    _submit(store, "a")
    assert JobStore.open(Hub(tmp_path)).list()[0].name == "a"  # a second process opening the same hub
    assert {"jobs", "job_events", "job_attempts", "job_nodes"} <= set(
        hub.engine.dialect.get_table_names(hub.engine.connect())
    )


def _placed_after_one_tick(tmp_path, pools, config, jobs):
    """Submit ``jobs`` ((user, priority) pairs), tick once, return the names placed; then kill what started."""
    from jobs_helpers import write_job

    from oar.jobs.daemon import build
    from oar.jobs.scheduler import SchedulerConfig
    from oar.jobs.service import submit

    hub = Hub(tmp_path)
    submitted = {}
    for i, (user, priority) in enumerate(jobs):
        job = submit(write_job(tmp_path, f"j{i}.yaml", user=user, priority=priority), hub, pools)
        submitted[job.id] = f"{user}{i}"
    scheduler = build(hub, pools=pools, config=SchedulerConfig(**config))
    scheduler.tick()
    store = JobStore.open(hub)
    placed = sorted(submitted[a.job_id] for a in store.attempts(states=("running",)))
    for attempt in store.attempts(states=("running",)):
        scheduler.executor.kill(attempt.handle)
    return placed


@pytest.mark.slow
def test_the_higher_priority_job_gets_the_free_node(tmp_path, monkeypatch):
    from oar.jobs.pools import Pool, Pools

    monkeypatch.setenv("OAR_HOME", str(tmp_path))
    pools = Pools(pools={"on-demand": Pool(min_nodes=1, max_nodes=1)})
    assert _placed_after_one_tick(tmp_path, pools, {}, [("ana", 0), ("bob", 5), ("cy", 1)]) == ["bob1"]


@pytest.mark.slow
def test_a_user_at_quota_waits_while_others_run(tmp_path, monkeypatch):
    from oar.jobs.pools import Pool, Pools

    monkeypatch.setenv("OAR_HOME", str(tmp_path))
    pools = Pools(pools={"on-demand": Pool(min_nodes=3, max_nodes=3)})
    placed = _placed_after_one_tick(tmp_path, pools, {"quotas": {"ana": 1}}, [("ana", 9), ("ana", 9), ("bob", 0)])
    assert placed == ["ana0", "bob2"]


def test_the_scheduler_and_executors_start_without_torch():
    """The scheduler daemon and the Ray actors import this path: it must stay light."""
    import subprocess
    import sys

    code = (
        "import sys, oar.jobs.daemon, oar.jobs.executors.local, oar.jobs.ledger, oar.jobs.cloud;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=50).returncode == 0


def test_the_exit_code_of_a_preempted_attempt_is_the_trainers():
    from oar.jobs.progress import EXIT_PREEMPTED
    from oar.train.preemption import EXIT_PREEMPTED as TRAINER_EXIT_PREEMPTED

    assert EXIT_PREEMPTED == TRAINER_EXIT_PREEMPTED


def _recorded_attempt(tmp_path, exit_code: str):  # type: ignore[no-untyped-def]
    """A job placed, its attempt recorded ``running`` with a finished parent: a scheduler stopped in between."""
    from oar.jobs.scheduler import job_dir

    hub = Hub(tmp_path)
    store = JobStore.open(hub)
    run = hub.runs.start("train", {})
    job = store.submit(name="j", user="ana", pool="on-demand", run_id=run.id, spec={})
    fields = {"pool": "on-demand", "nodes": ["n"], "workers": 1, "cpus": 1, "node_share": 1.0, "price_per_hour": 0.1}
    attempt = store.place(job, fields, "placed")
    directory = job_dir(hub, job.id) / "attempt-1"
    directory.mkdir(parents=True)
    (directory / "owner").write_text("started")
    (directory / "exit_code").write_text(exit_code)
    store.update_attempt(attempt.id, state="running", handle={"dir": str(directory), "pid": -1})
    return hub, store, job


def test_a_fresh_scheduler_moves_on_a_job_left_placed_under_a_running_attempt(tmp_path):
    from oar.jobs.daemon import build
    from oar.jobs.pools import Pool, Pools

    hub, store, job = _recorded_attempt(tmp_path, "0")
    assert store.get(job.id).state == "placed"
    scheduler = build(hub, pools=Pools(pools={"on-demand": Pool(min_nodes=0, max_nodes=1)}))
    assert store.get(job.id).state == "running"  # recover() alone
    scheduler.tick()
    assert store.get(job.id).state == "succeeded" and not scheduler.busy()


def test_a_trainer_killed_by_a_signal_is_named_and_an_empty_log_says_so(tmp_path):
    from oar.jobs.daemon import build
    from oar.jobs.pools import Pool, Pools
    from oar.jobs.scheduler import describe_exit

    assert describe_exit(137) == "was killed by signal 9 (SIGKILL, e.g. out of memory)"
    assert describe_exit(1) == "failed with exit code 1"
    hub, store, job = _recorded_attempt(tmp_path, "137")
    scheduler = build(hub, pools=Pools(pools={"on-demand": Pool(min_nodes=0, max_nodes=1)}))
    scheduler.tick()
    job = store.get(job.id)
    assert job.state == "failed"
    assert job.reason.endswith("was killed by signal 9 (SIGKILL, e.g. out of memory); no output")
    assert hub.runs.get(job.run_id).status == "failed"
