"""A hub of its own per module (``OAR_HOME``: the scheduler and the scoring jobs read it), a competition on
the built-in digits dataset cut to 60 test rows, and a small real digits classifier package."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from studio.conftest import numeric_package  # noqa: F401  (a generic package, for the wrong-task check)

TEST_ROWS = 60


def spec_dict(name: str = "digits-cup", **changes: object) -> dict:
    start = datetime.now(UTC) - timedelta(hours=1)
    spec = {
        "name": name,
        "title": "Digits cup",
        "dataset": {"name": "digits"},
        "test_rows": TEST_ROWS,
        "public_fraction": 0.5,
        "seed": 3,
        "metric": "accuracy",
        "phases": [{"name": "main", "start": start.isoformat(), "end": (start + timedelta(days=30)).isoformat()}],
        "limits": {"daily": 3, "total": 5, "final_selections": 1},
        "sandbox": {"time_s": 60, "memory_mb": 2048, "cpus": 1},
    }
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    saved = os.environ.get("OAR_HOME")
    path = tmp_path_factory.mktemp("competitions-home")
    os.environ["OAR_HOME"] = str(path)
    yield path
    if saved is None:
        os.environ.pop("OAR_HOME", None)
    else:
        os.environ["OAR_HOME"] = saved


@pytest.fixture(scope="module")
def hub(home: Path):
    import oar.competitions
    import oar.jobs  # noqa: F401
    from oar.hub import Hub

    hub = Hub(home=home)
    yield hub
    hub.close()


def digits_classifier(path: Path, steps: int = 150):
    """Softmax regression on the digits training split (a second of CPU), exported and parity-checked."""
    import torch
    from torch import nn

    import oar
    from oar.data.builtin import load_builtin
    from oar.export import InputSpec

    data = load_builtin("digits")
    x = torch.tensor(data.train.x, dtype=torch.float32)
    y = torch.tensor(data.train.y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    spec = [InputSpec([None, 1, 8, 8], "float32", "image", (0, 1))]
    return oar.jit.save(model.eval(), path, input_spec=spec, labels=data.labels, name="digits-lr")


@pytest.fixture(scope="module")
def digits_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return digits_classifier(tmp_path_factory.mktemp("pkg") / "digits-lr").path


def wait_scored(competitions, submission_id: str, timeout: float = 90.0):
    """The submission once it left queued/running (the scheduler and scoring job run in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        submission = competitions.refresh(competitions.store.submission(submission_id))
        if submission.status not in ("queued", "running") or time.monotonic() > deadline:
            return submission
        time.sleep(0.3)
