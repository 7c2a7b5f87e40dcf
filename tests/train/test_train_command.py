"""``oar train`` for real, in subprocesses: SIGTERM and SIGKILL at random steps, then ``--resume``.

The resumed run must end with the same bytes of weights as a run nobody interrupted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from oar.hub import Hub
from oar.train.preemption import EXIT_PREEMPTED

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

STEPS = 60  # 480 texts / 16 a batch x 2 epochs
EVERY = 4
JOB = {
    "name": "resume-check",
    "data": {"dataset": "chnsenti", "limit": 480, "valid_limit": 120, "batch_size": 16, "vocab_size": 1200},
    "model": {"arch": "text-transformer", "options": {"dim": 32, "depth": 2, "heads": 2, "dropout": 0.2}},
    "trainer": {
        "epochs": 2,
        "eval_every": 10,
        "log_every": 1,
        "patience": None,
        "restore_best": False,
        "threads": 1,
        "checkpoint": {"every_steps": EVERY, "keep_last": 3},
    },
    "register_model": False,  # registration has its own tests (test_train_phases.py)
}


def oar(home: Path, *args: str, wait: bool = True):
    env = {**os.environ, "OAR_HOME": str(home), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "oar.cli.main", "train", *args, "--no-progress"]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("oar-train-home")


@pytest.fixture(scope="module")
def config(home) -> Path:
    path = home / "job.yaml"
    path.write_text(yaml.safe_dump(JOB))
    return path


@pytest.fixture(scope="module")
def reference(home, config):
    """The uninterrupted run: its final weights are what every interrupted run must reproduce."""
    done = oar(home, str(config))
    assert done.returncode == 0, done.stderr
    run = max(Hub(home).runs.list(), key=lambda r: r.started_at)
    assert run.status == "finished" and run.metrics["steps"] == STEPS
    return run


def _checkpoint_steps(folder: Path) -> list[int]:
    found = (p.name[5:] for p in folder.glob("step-*"))
    return sorted(int(name) for name in found if name.isdigit())


def _interrupt(home: Path, config: Path, sig: signal.Signals) -> tuple[subprocess.Popen, str, int, int]:
    """Start a run and send ``sig`` once it has a checkpoint at or after a random step."""
    seed = random.randrange(1 << 30)
    target = random.Random(seed).randrange(EVERY, STEPS * 2 // 3)
    before = {p.name for p in (home / "runs").iterdir()}
    process = oar(home, str(config), wait=False)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and process.poll() is None:
        new = [p for p in (home / "runs").iterdir() if p.name not in before]
        steps = _checkpoint_steps(new[0] / "checkpoints") if new else []
        if steps and steps[-1] >= target:
            process.send_signal(sig)
            break
        time.sleep(0.01)
    _, stderr = process.communicate(timeout=300)
    assert new, f"no run started: {stderr}"
    return process, new[0].name, target, seed


def _weights(run) -> bytes:
    return Path(run.metrics["weights"]).read_bytes()


def _curve(run) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "samples_per_s"} for h in run.history]


def test_sigterm_checkpoints_exits_75_and_resume_is_bit_exact(home, config, reference):
    process, run_id, target, seed = _interrupt(home, config, signal.SIGTERM)
    assert process.returncode == EXIT_PREEMPTED, f"seed {seed}"
    run = Hub(home).runs.get(run_id)
    assert run.status == "preempted" and run.metrics["preempted_at_step"] >= target
    assert _checkpoint_steps(home / "runs" / run_id / "checkpoints")[-1] == run.metrics["preempted_at_step"]
    resumed = oar(home, "--resume", run.id)
    assert resumed.returncode == 0, resumed.stderr
    run = Hub(home).runs.get(run.id)
    assert run.status == "finished" and run.metrics["resumed_from"] == run.metrics["preempted_at_step"]
    assert _weights(run) == _weights(reference), f"seed {seed}, stopped at {run.metrics['resumed_from']}"
    assert _curve(run) == _curve(reference)


def test_sigkill_loses_only_steps_since_the_last_checkpoint_and_resume_is_bit_exact(home, config, reference):
    """Also damages the newest checkpoint after the kill: resume must skip it, say so, and still match."""
    process, run_id, target, seed = _interrupt(home, config, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL, f"seed {seed}: the run ended before the signal"
    assert Hub(home).runs.get(run_id).status == "running"  # nobody could record anything
    steps = _checkpoint_steps(home / "runs" / run_id / "checkpoints")
    assert steps[-1] >= target and len(steps) >= 2
    newest = home / "runs" / run_id / "checkpoints" / f"step-{steps[-1]:09d}" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])
    resumed = oar(home, "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipping checkpoint step-{steps[-1]:09d}" in resumed.stderr and "truncated" in resumed.stderr
    run = Hub(home).runs.get(run_id)
    assert run.metrics["resumed_from"] == steps[-2] == steps[-1] - EVERY
    assert _weights(run) == _weights(reference), f"seed {seed}, resumed from {steps[-2]}"


def test_the_run_is_recorded_with_curves_and_tensorboard_events(home, reference):
    history = reference.history
    assert [h["step"] for h in history if "train_loss" in h] == list(range(1, STEPS + 1))
    assert sum("valid_accuracy" in h for h in history) == STEPS // 10
    assert reference.config["job"]["model"]["arch"] == "text-transformer"
    events = list((home / "runs" / reference.id / "tensorboard").glob("events.out.tfevents.*"))
    assert events and b"train_loss" in events[0].read_bytes() and b"valid_accuracy" in events[0].read_bytes()
    env = {**os.environ, "OAR_HOME": str(home)}
    shown = subprocess.run(
        [sys.executable, "-m", "oar.cli.main", "runs", "show", reference.id],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert shown.returncode == 0
    curves = [line for line in shown.stdout.splitlines() if "(steps " in line]
    assert [line.split()[0] for line in curves] == ["train_loss", "valid_loss", "valid_accuracy", "lr"]


def test_a_bad_config_is_one_clear_line_per_problem_and_exit_1(home):
    bad = home / "bad.yaml"
    bad.write_text(yaml.safe_dump({**JOB, "trainer": {"epochs": 3, "lrr": 0.1}, "extra": 1}))
    result = oar(home, str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "trainer.lrr: unknown key" in result.stderr and "extra: unknown key" in result.stderr
