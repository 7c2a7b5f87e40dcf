"""LocalProcessSpawner: real child processes, real signals, real /proc; the stored state is JSON."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from oar._core.errors import InvalidInputError
from oar.supervise import (
    EXIT_UNKNOWN,
    LocalProcessSpawner,
    ProcessIdentity,
    ProcessSpec,
    StartFailedError,
    spawner_from_state,
    wait_ready,
)

PY = sys.executable


def python(code: str, tmp_path: Path, **spec: object) -> LocalProcessSpawner:
    return LocalProcessSpawner(ProcessSpec(argv=(PY, "-c", code), log_path=str(tmp_path / "child.log"), **spec))


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def stored(spawner: LocalProcessSpawner) -> dict:
    """The state as the caller's database would give it back: through JSON."""
    return json.loads(json.dumps(spawner.state()))


@pytest.mark.timeout(30)
def test_start_returns_a_json_state_and_stop_is_graceful(tmp_path: Path) -> None:
    spawner = python("import time; print('up', flush=True); time.sleep(60)", tmp_path)
    state = spawner.start()
    assert json.loads(json.dumps(state)) == state
    assert state["kind"] == "local" and state["pid"] == spawner.pid and state["start_ticks"] > 0
    assert spawner.poll() is None
    wait_for(lambda: spawner.log_tail(1) == "up")
    assert spawner.stop(timeout=5) == -signal.SIGTERM
    assert spawner.poll() == -signal.SIGTERM


@pytest.mark.timeout(30)
def test_stop_kills_a_child_that_ignores_sigterm_after_the_timeout(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); time.sleep(60)"
    )
    spawner = python(code, tmp_path)
    spawner.start()
    wait_for(lambda: spawner.log_tail(1) == "armed")  # the handler is installed
    started = time.monotonic()
    assert spawner.stop(timeout=0.5) == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 5


@pytest.mark.timeout(30)
def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    spawner = python(code, tmp_path)
    spawner.start()
    wait_for(lambda: spawner.log_tail(1).strip().isdigit())
    grandchild = ProcessIdentity.of(int(spawner.log_tail(1)))
    assert grandchild is not None and grandchild.alive()
    spawner.stop(timeout=5)
    wait_for(lambda: not grandchild.alive(), timeout=5)


@pytest.mark.timeout(30)
def test_kill_9_is_detected(tmp_path: Path) -> None:
    spawner = python("import time; time.sleep(60)", tmp_path)
    spawner.start()
    os.kill(spawner.pid, signal.SIGKILL)
    wait_for(lambda: spawner.poll() is not None)
    assert spawner.poll() == -signal.SIGKILL


@pytest.mark.timeout(30)
def test_a_stored_state_re_adopts_the_running_process(tmp_path: Path) -> None:
    first = python("import time; time.sleep(60)", tmp_path)
    first.start()
    adopted = spawner_from_state(stored(first))
    assert isinstance(adopted, LocalProcessSpawner) and adopted.pid == first.pid
    assert adopted.poll() is None
    assert adopted.stop(timeout=5) == -signal.SIGTERM  # our own child here, so its status is known
    first.poll()  # the first handle learns its child was collected (no ResourceWarning)
    assert not ProcessIdentity(first.pid, stored(first)["start_ticks"], stored(first)["boot_id"]).alive()


@pytest.mark.timeout(30)
def test_a_re_adopted_process_killed_with_9_is_reported_gone(tmp_path: Path) -> None:
    first = python("import time; time.sleep(60)", tmp_path)
    first.start()
    adopted = spawner_from_state(stored(first))
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: adopted.poll() is not None)
    assert adopted.poll() in (-signal.SIGKILL, EXIT_UNKNOWN)
    first.poll()


@pytest.mark.timeout(30)
def test_a_pid_with_another_start_time_is_not_adopted_and_not_signalled(tmp_path: Path) -> None:
    other = python("import time; time.sleep(60)", tmp_path)
    other.start()
    state = stored(other)
    state["start_ticks"] += 1  # the same pid number, a different process (a recycled pid)
    ghost = spawner_from_state(state)
    assert ghost.poll() == EXIT_UNKNOWN
    assert ghost.stop(timeout=1) == EXIT_UNKNOWN
    assert other.poll() is None  # the unrelated process was left alone
    other.stop(timeout=5)


@pytest.mark.timeout(30)
def test_env_cwd_and_secret_env_files_reach_the_child_but_not_the_state(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    secret.chmod(0o600)
    code = "import os; print(os.environ['PLAIN'], os.environ['SECRET'], os.getcwd(), flush=True)"
    spawner = python(code, tmp_path, env={"PLAIN": "p"}, env_files={"SECRET": str(secret)}, cwd=str(tmp_path))
    spawner.start()
    wait_for(lambda: spawner.poll() is not None)
    assert spawner.poll() == 0
    assert spawner.log_tail(1) == f"p s3cr3t {tmp_path}"
    assert "s3cr3t" not in json.dumps(spawner.state())


@pytest.mark.timeout(30)
def test_the_log_is_capped_by_rotation_and_its_tail_stays_readable(tmp_path: Path) -> None:
    code = (
        "import sys, time\nfor i in range(20000): print(f'line {i}')\nsys.stdout.flush(); time.sleep(0.5); print('end')"
    )
    spawner = python(code, tmp_path, log_max_bytes=4096, log_backups=1)
    spawner.start()
    wait_for(lambda: spawner.poll() is not None)  # each poll enforces the cap
    spawner.poll()
    log = Path(spawner.spec.log_path)
    assert log.stat().st_size <= 4096 and log.with_name("child.log.1").exists()
    assert not log.with_name("child.log.2").exists()
    assert spawner.log_tail(1) == "end"
    assert len(spawner.log_tail(500).splitlines()) == 500  # reaches into the rotated copy


@pytest.mark.timeout(30)
def test_starting_twice_is_refused_and_a_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    from oar._core.errors import OarError

    spawner = python("import time; time.sleep(60)", tmp_path)
    spawner.start()
    with pytest.raises(OarError, match="still running"):
        spawner.start()
    spawner.stop(timeout=5)
    missing = LocalProcessSpawner(ProcessSpec(argv=("/nonexistent/prog",), log_path=str(tmp_path / "m.log")))
    with pytest.raises(OarError, match="cannot start '/nonexistent/prog'"):
        missing.start()


@pytest.mark.timeout(30)
def test_a_process_that_dies_at_start_fails_with_its_log_tail(tmp_path: Path) -> None:
    spawner = python("import sys; print('port 1234 already in use', file=sys.stderr); sys.exit(3)", tmp_path)
    spawner.start()
    with pytest.raises(StartFailedError, match="exited with code 3") as failure:
        wait_ready(spawner, "http://127.0.0.1:9", timeout=20)
    assert "port 1234 already in use" in failure.value.log_tail
    assert "port 1234 already in use" in str(failure.value)


def test_unknown_or_malformed_states_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown kind 'k8s'.*known kinds: local, ray"):
        spawner_from_state({"kind": "k8s"})
    with pytest.raises(InvalidInputError, match="stored Ray process state is malformed"):
        spawner_from_state({"kind": "ray"})
    with pytest.raises(InvalidInputError, match="malformed"):
        spawner_from_state({"kind": "local", "spec": {"argv": []}})


@pytest.mark.timeout(60)
def test_a_process_whose_supervisor_exited_is_adopted_by_another_process_and_stopped(tmp_path: Path) -> None:
    """The supervising process really ends (the server's parent is gone); a new one adopts from the JSON."""
    import subprocess

    starter = (
        "import json, sys\n"
        "from oar.supervise import LocalProcessSpawner, ProcessSpec\n"
        f"spec = ProcessSpec(argv=({PY!r}, '-c', 'import time; time.sleep(60)'), "
        f"log_path={str(tmp_path / 'o.log')!r})\n"
        "print(json.dumps(LocalProcessSpawner(spec).start()))\n"
    )
    done = subprocess.run([PY, "-c", starter], capture_output=True, text=True, timeout=50, check=True)
    orphan = spawner_from_state(json.loads(done.stdout))
    assert orphan.poll() is None  # not our child: known alive through /proc alone
    identity = ProcessIdentity.of(orphan.pid)
    assert orphan.stop(timeout=5) == EXIT_UNKNOWN  # stopped, but its exit status went to its real parent
    wait_for(lambda: not identity.alive(), timeout=5)
