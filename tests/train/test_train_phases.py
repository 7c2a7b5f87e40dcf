"""SIGTERM at every phase of ``oar train`` outside the training steps: exit 75, run "preempted", resumable.

Each phase is made observable by ``hold_phase.py`` (beside this file), which runs ``oar`` with a phase
observer installed: the process announces the phase on stderr and waits there for the signal. One run
is walked through all the phases by a chain of resumes, each stopped at the next phase, and must still
end finished, with a registered model and the same weights, byte for byte, as a run nobody interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from oar.hub import Hub
from oar.train.preemption import EXIT_PREEMPTED

HOLD = Path(__file__).with_name("hold_phase.py")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

JOB = {
    "name": "phase-check",
    "data": {"dataset": "chnsenti", "limit": 160, "valid_limit": 60, "batch_size": 16, "vocab_size": 600},
    "model": {"arch": "text-transformer", "options": {"dim": 16, "depth": 1, "heads": 2, "dropout": 0.1}},
    "trainer": {
        "epochs": 1,
        "log_every": 1,
        "patience": None,
        "restore_best": False,
        "threads": 1,
        "checkpoint": {"every_steps": 4},
    },
    "tensorboard": False,
}


def _oar(home: Path, *args: str, hold: str | None = None) -> subprocess.CompletedProcess:
    """Run ``oar train``; with ``hold``, SIGTERM it as soon as it announces that phase."""
    env = {**os.environ, "OAR_HOME": str(home), "OMP_NUM_THREADS": "1"}
    runner = [str(HOLD), hold] if hold else ["-m", "oar.cli.main"]
    command = [sys.executable, *runner, "train", *args, "--no-progress"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    if hold:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if line.strip() == f"oar-train-phase: {hold}":
                process.send_signal(signal.SIGTERM)
                break
    stdout, stderr = process.communicate(timeout=240)
    return subprocess.CompletedProcess(command, process.returncode, stdout, "".join(lines) + stderr)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("oar-phases")
    (home / "job.yaml").write_text(yaml.safe_dump(JOB))
    return home


def _newest(home: Path):
    return max(Hub(home).runs.list(), key=lambda r: r.started_at)


def _preempted(done: subprocess.CompletedProcess, home: Path, run_id: str, phase: str) -> None:
    assert done.returncode == EXIT_PREEMPTED, f"phase {phase}: exit {done.returncode}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr and f"oar train --resume {run_id}" in done.stderr
    run = Hub(home).runs.get(run_id)
    assert run.status == "preempted", f"phase {phase}: run is {run.status}"


def test_sigterm_at_startup_leaves_a_resumable_run(home):
    done = _oar(home, str(home / "job.yaml"), hold="startup")
    run = _newest(home)
    _preempted(done, home, run.id, "startup")
    assert run.metrics["preempted_phase"] == "tokenizer"  # stopped before doing any work


def test_sigterm_at_each_phase_then_resume_ends_finished_and_bit_exact(home):
    reference = _oar(home, str(home / "job.yaml"))
    assert reference.returncode == 0, reference.stderr
    expected = _newest(home)
    assert expected.status == "finished" and expected.metrics["model"] == "phase-check:1"

    done = _oar(home, str(home / "job.yaml"), hold="tokenizer")
    run_id = _newest(home).id
    _preempted(done, home, run_id, "tokenizer")
    # a fresh run: restore finds nothing; then a finished checkpoint: restore opens it
    for phase in ("data", "model", "restore", "evaluate", "restore", "save", "register"):
        _preempted(_oar(home, "--resume", run_id, hold=phase), home, run_id, phase)
    final = _oar(home, "--resume", run_id)
    assert final.returncode == 0, final.stderr
    run = Hub(home).runs.get(run_id)
    assert run.status == "finished" and run.metrics["model"] == "phase-check:2"
    assert Path(run.metrics["weights"]).read_bytes() == Path(expected.metrics["weights"]).read_bytes()
    assert run.metrics["steps"] == expected.metrics["steps"] == 10
    assert "registered phase-check:2" in final.stdout
