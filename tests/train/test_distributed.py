"""``oar train --nproc 2``: two real processes over gloo; preempted, then resumed on one process.

Covers data-parallel training, SIGTERM forwarded through torchrun's launcher, and a checkpoint written
at world size 2 continuing at world size 1, ending within float tolerance of a single-process run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from oar.hub import Hub
from oar.train.preemption import EXIT_PREEMPTED

JOB = {
    "data": {"dataset": "chnsenti", "limit": 480, "valid_limit": 120, "batch_size": 16, "vocab_size": 1200},
    "model": {"arch": "text-transformer", "options": {"dim": 32, "depth": 2, "heads": 2, "dropout": 0.0}},
    "trainer": {
        "epochs": 2,
        "eval_every": 10,
        "patience": None,
        "restore_best": False,
        "threads": 1,
        "checkpoint": {"every_steps": 5},
    },
    "tensorboard": False,
}


def _train(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OAR_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "oar.cli.main", "train", *args, "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> str:
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    return stderr


def test_two_processes_preempted_then_resumed_on_one_match_single_process(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(JOB))
    (tmp_path / "runs").mkdir()
    distributed = _train(tmp_path, str(config), "--nproc", "2")
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and distributed.poll() is None:
        folders = list((tmp_path / "runs").iterdir())
        if folders and list((folders[0] / "checkpoints").glob("step-*")):
            distributed.send_signal(signal.SIGTERM)
            break
        time.sleep(0.02)
    _, stderr = distributed.communicate(timeout=120)
    assert distributed.returncode == EXIT_PREEMPTED, stderr
    (run,) = Hub(tmp_path).runs.list()
    assert run.status == "preempted"
    _finish(_train(tmp_path, "--resume", run.id))
    _finish(_train(tmp_path, str(config)))
    resumed, single = sorted(Hub(tmp_path).runs.list(), key=lambda r: r.started_at)
    assert resumed.metrics["world_size"] == 1 and resumed.metrics["resumed_from"] >= 5
    a, b = load_file(resumed.metrics["weights"]), load_file(single.metrics["weights"])
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 2e-3, f"2-process run differs from 1-process run by {worst}"
    assert abs(resumed.metrics["valid_accuracy"] - single.metrics["valid_accuracy"]) <= 0.02
    assert not torch.equal(a["head.weight"], torch.zeros_like(a["head.weight"]))
