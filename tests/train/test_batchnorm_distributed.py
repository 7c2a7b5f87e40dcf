"""Batch norm over 2 processes trains like 1 process on the whole batch (weights and running statistics).

Each rank normalises its slice of the batch; without global-batch statistics a 1 → 2 worker resize
moved conv weights by 0.03 and running means by 0.26. Three real processes: one alone, two joined
over gloo on loopback as torchrun would join them (``oar.train.distributed.world_from_env``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

pytestmark = pytest.mark.timeout(300)
STEPS = 12

_WORKER = """
import sys
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from torch import nn
from oar.train import distributed

torch.set_num_threads(1)
world = distributed.world_from_env()
torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
    nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
)
digits = load_digits()
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
labels = torch.tensor(digits.target)
module = distributed.wrap(model, world)
optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
for step in range(int(sys.argv[2])):
    rows = slice(step * 32, step * 32 + 32)
    inputs, targets = distributed.shard(images[rows], world), distributed.shard(labels[rows], world)
    loss = nn.functional.cross_entropy(module(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
if world.is_main:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, sys.argv[1])
distributed.leave(world)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(out: Path, **env: str) -> subprocess.Popen:
    src = str(Path(__file__).resolve().parents[2] / "src")
    path = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    full = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    full.pop("WORLD_SIZE", None)
    command = [sys.executable, "-c", _WORKER, str(out), str(STEPS)]
    return subprocess.Popen(command, env={**full, **env}, stderr=subprocess.PIPE, text=True)


def test_two_processes_with_batch_norm_match_one_process_within_float_rounding(tmp_path):
    port = str(_free_port())
    group = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    processes = [
        _start(tmp_path / "single.safetensors"),
        _start(tmp_path / "pair.safetensors", RANK="0", LOCAL_RANK="0", **group),
        _start(tmp_path / "unused.safetensors", RANK="1", LOCAL_RANK="1", **group),
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr[-3000:]
    single, pair = load_file(tmp_path / "single.safetensors"), load_file(tmp_path / "pair.safetensors")
    assert set(single) == set(pair)  # the same state-dict keys: checkpoints move between world sizes
    assert int(pair["1.num_batches_tracked"]) == STEPS
    gaps = {key: float((single[key].double() - pair[key].double()).abs().max()) for key in single}
    assert max(gaps.values()) < 1e-4, f"1 vs 2 processes: {gaps}"
    assert float((single["1.running_mean"]).abs().max()) > 1e-2  # the statistics did move
