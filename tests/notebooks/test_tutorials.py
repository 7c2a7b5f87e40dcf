"""Every tutorial runs to its end with nbclient, in reduced mode, in the order of the learning path.

A failing cell fails the test, and so does a notebook over its budget (``BUDGET_S``); they share one
OAR_HOME, as a newcomer's hub would (04 quantizes the model 01 trained).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from oar.tutorials import tutorials

pytestmark = [pytest.mark.slow]
# Seconds each may take at most, whole notebook (measured on 2 cores under a load average of ~10:
# 26-103 s each, 6 min for the seven).
BUDGET_S = {
    "01-quickstart": 180,
    "02-graphs-precision": 150,
    "03-kill-and-resume": 180,
    "04-export-quantize": 150,
    "05-serve-and-deploy": 120,
    "06-import-paddle": 150,
    "07-spot-jobs": 150,
    "08-custom-op-recommender": 300,  # compiles two C++ kernels (PyTorch, ONNX Runtime) and oar's fused op's library
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tutorials")


def test_the_learning_path_lists_eight_tutorials_in_order() -> None:
    names = [t.name for t in tutorials()]
    assert names == sorted(names) and len(names) == 8 and set(names) == set(BUDGET_S)
    assert all(t.path.is_file() for t in tutorials())


@pytest.mark.timeout(360)
@pytest.mark.parametrize("name", list(BUDGET_S))
def test_the_tutorial_runs_to_its_end(name: str, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAR_TUTORIAL_FAST", "1")
    monkeypatch.setenv("OAR_HOME", str(workspace / "oar-home"))
    for variable in ("OAR_STUDIO_URL", "OAR_STUDIO_TOKEN", "OAR_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    source = Path(__file__).resolve().parents[2] / "src"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(next(t.path for t in tutorials() if t.name == name), as_version=4)
    started = time.monotonic()
    NotebookClient(
        notebook, timeout=BUDGET_S[name], kernel_name="python3", resources={"metadata": {"path": str(workspace)}}
    ).execute()
    took = time.monotonic() - started
    last = "".join(out.get("text", "") for out in notebook.cells[-1].outputs)
    assert f"{name}: done" in last
    assert took < BUDGET_S[name], f"{name} took {took:.0f} s, over its budget of {BUDGET_S[name]} s"
