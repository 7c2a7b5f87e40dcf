"""Supervisor: crash -> restart with capped exponential back-off, reset after a stable period, re-adoption."""

from __future__ import annotations

import itertools
import json
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from oar.supervise import (
    LocalProcessSpawner,
    ProcessSpec,
    RestartPolicy,
    Status,
    Supervisor,
    spawner_from_state,
)

PY = sys.executable


class Recorder:
    """The caller's store: keeps every record on_change reports, as JSON (what a database would keep)."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, key: str, record: dict) -> None:
        with self.lock:
            self.records.append(json.loads(json.dumps(record)))

    def statuses(self) -> list[str]:
        with self.lock:
            return [r["status"] for r in self.records]

    def last(self) -> dict:
        with self.lock:
            return self.records[-1]

    def start_times(self) -> list[float]:
        with self.lock:
            return [r["spawner"]["started_at"] for r in self.records if r["status"] == "running"]


def spawner(tmp_path: Path, code: str) -> LocalProcessSpawner:
    return LocalProcessSpawner(ProcessSpec(argv=(PY, "-c", code), log_path=str(tmp_path / "unit.log")))


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.timeout(60)
def test_a_crashing_unit_is_restarted_with_exponential_back_off(tmp_path: Path) -> None:
    store = Recorder()
    policy = RestartPolicy(initial_delay=0.2, factor=2.0, max_delay=0.8, stable_after=30)
    unit = spawner(tmp_path, "import sys; sys.exit(3)")
    unit.start()
    with Supervisor(on_change=store, policy=policy, interval=0.01) as supervisor:
        supervisor.watch("crashy", unit)
        wait_for(lambda: len(store.start_times()) >= 6)
        supervisor.unwatch("crashy")
    starts = store.start_times()[:6]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # back-off after failure n: 0.2, 0.4, 0.8, then capped at 0.8 (plus the time the child takes to exit)
    for gap, delay in zip(gaps, [0.2, 0.4, 0.8, 0.8, 0.8], strict=False):
        assert delay <= gap < delay + 0.6, gaps
    crashed = [r for r in store.records if r["status"] == "backoff"]
    assert crashed[0]["last_exit_code"] == 3 and crashed[0]["next_start_at"] is not None
    assert store.last()["status"] == "stopped" and store.last()["restarts"] >= 5


@pytest.mark.timeout(60)
def test_the_back_off_resets_after_a_stable_period(tmp_path: Path) -> None:
    store = Recorder()
    policy = RestartPolicy(initial_delay=0.3, factor=4.0, max_delay=10, stable_after=0.4)
    # runs 0.6 s (longer than stable_after) and exits: every restart is a first failure again
    unit = spawner(tmp_path, "import sys, time; time.sleep(0.6); sys.exit(1)")
    unit.start()
    with Supervisor(on_change=store, policy=policy, interval=0.01) as supervisor:
        supervisor.watch("flaky", unit)
        wait_for(lambda: supervisor.record("flaky")["restarts"] >= 3)
        failures = [r["consecutive_failures"] for r in store.records if r["status"] == "backoff"]
        supervisor.unwatch("flaky")
    assert failures[:3] == [1, 1, 1]  # without the reset: 1, 2, 3 and waits of 0.3, 1.2, 4.8 s


@pytest.mark.timeout(60)
def test_a_unit_that_keeps_failing_is_given_up_after_max_restarts(tmp_path: Path) -> None:
    store = Recorder()
    policy = RestartPolicy(initial_delay=0.05, max_delay=0.05, max_restarts=2)
    unit = spawner(tmp_path, "import sys; print('bad config', flush=True); sys.exit(2)")
    unit.start()
    with Supervisor(on_change=store, policy=policy, interval=0.01) as supervisor:
        supervisor.watch("broken", unit)
        wait_for(lambda: supervisor.record("broken")["status"] == "failed")
        assert supervisor.record("broken")["restarts"] == 2
        assert "bad config" in supervisor.log_tail("broken", 5)


@pytest.mark.timeout(60)
def test_kill_9_is_detected_and_restarted(tmp_path: Path) -> None:
    import os

    store = Recorder()
    unit = spawner(tmp_path, "import time; time.sleep(60)")
    unit.start()
    with Supervisor(on_change=store, policy=RestartPolicy(initial_delay=0.1), interval=0.01) as supervisor:
        supervisor.watch("victim", unit)
        first_pid = unit.pid
        os.kill(first_pid, signal.SIGKILL)
        wait_for(lambda: supervisor.record("victim")["restarts"] == 1)
        crashed = next(r for r in store.records if r["status"] == "backoff")
        assert crashed["last_exit_code"] == -signal.SIGKILL
        assert unit.pid != first_pid and unit.poll() is None
        supervisor.unwatch("victim")
    assert unit.poll() == -signal.SIGTERM


@pytest.mark.timeout(60)
def test_a_new_supervisor_re_adopts_running_units_and_restarts_gone_ones(tmp_path: Path) -> None:
    store = Recorder()
    alive = spawner(tmp_path / "a", "import time; time.sleep(60)")
    gone = spawner(tmp_path / "b", "import time; time.sleep(60)")
    alive.start()
    gone.start()
    first = Supervisor(on_change=store, interval=0.01).start()
    first.watch("alive", alive)
    first.watch("gone", gone)
    stored = {key: first.record(key) for key in first.watched()}
    first.close()  # the supervising process "restarts": only the stored records survive
    stored = json.loads(json.dumps(stored))
    gone.stop(timeout=5)  # ends while nobody supervises it

    with Supervisor(on_change=store, policy=RestartPolicy(initial_delay=0.1), interval=0.01) as second:
        again = {key: spawner_from_state(record["spawner"]) for key, record in stored.items()}
        assert again["alive"].poll() is None and again["alive"].pid == alive.pid
        assert again["gone"].poll() is not None
        second.watch("alive", again["alive"])
        second.watch("gone", again["gone"])
        wait_for(lambda: second.record("gone")["status"] == Status.RUNNING)
        assert second.record("alive")["restarts"] == 0 and second.record("gone")["restarts"] == 1
        assert again["gone"].pid != gone.pid
        for key in ("alive", "gone"):
            second.unwatch(key)
        assert again["alive"].poll() is not None and again["gone"].poll() is not None
    alive.poll()  # the first handle learns its child was collected (no ResourceWarning)


@pytest.mark.timeout(60)
def test_a_unit_not_ready_in_time_is_stopped_and_counted_as_a_failure(tmp_path: Path) -> None:
    store = Recorder()
    policy = RestartPolicy(initial_delay=0.05, start_timeout=0.3, max_restarts=0)
    unit = spawner(tmp_path, "import time; time.sleep(60)")
    with Supervisor(on_change=store, policy=policy, interval=0.01) as supervisor:
        supervisor.watch("slow", unit, ready=lambda: False)  # never started: the supervisor starts it
        wait_for(lambda: supervisor.record("slow")["status"] == Status.FAILED)
    assert unit.poll() == -signal.SIGTERM
    assert [s for s in store.statuses() if s != "backoff"][:2] == ["starting", "failed"]
