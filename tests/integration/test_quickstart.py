"""`oar quickstart` as a user runs it: a real subprocess, its own OAR_HOME, the printed results, the hub after.

Ctrl-C leaves the run recorded as interrupted, and the same command continues it from its checkpoint.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oar.hub import Hub
from oar.serve.process import free_port

pytestmark = pytest.mark.slow
EXPECTED = {  # the three example reviews the quickstart classifies, and what they say
    "这家酒店的服务很周到，房间也很干净，下次还会再来。": "positive",
    "质量太差了，用了两天就坏了，非常失望。": "negative",
    "物流很快，包装完好，性价比很高，值得购买。": "positive",
}


def quickstart(home: Path, *args: str, **popen) -> subprocess.Popen[str]:
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    command = [sys.executable, "-m", "oar.cli.main", "quickstart", "--port", str(free_port()), *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen)


@pytest.mark.timeout(900)
def test_the_quickstart_trains_serves_and_registers_a_model_that_reads_the_reviews_right(tmp_path):
    process = quickstart(tmp_path)
    out, err = finish(process, timeout=860)

    assert process.returncode == 0, out + err
    assert "Traceback" not in out + err
    accuracy = float(re.search(r"test accuracy\s+([0-9.]+)", out).group(1))
    assert 0.80 <= accuracy <= 0.90, out
    served = re.search(r"served at (http://127\.0\.0\.1:\d+)", out)
    assert served, out
    for text, label in EXPECTED.items():
        row = next(line for line in out.splitlines() if text in line)
        assert re.search(rf"│ {label}\s+│ (0\.[5-9]\d\d|1\.000) │", row), row
    assert re.search(r"p50 \d+\.\d\d ms, p99 \d+\.\d\d ms", out)
    assert "oar serve chnsenti-cls:1 --port 8500" in out

    hub = Hub(home=tmp_path)
    model = hub.models.get("chnsenti-cls")
    run = hub.runs.get(model.run_id)
    assert model.version == 1 and run.status == "finished" and run.metrics["model"] == "chnsenti-cls:1"
    assert run.metrics["test_accuracy"] == pytest.approx(accuracy, abs=5e-5)
    assert model.manifest["parity"]["passed"] and model.manifest["lineage"]["dataset"]["name"] == "chnsenti"
    assert [d.name for d in hub.datasets.list()] == ["chnsenti"]
    assert not (tmp_path / "runs" / run.id).exists(), "resume checkpoints are removed once the model is registered"


def _default_ctrl_c() -> None:
    """A command started in the background of a shell inherits SIGINT ignored; a terminal's Ctrl-C is not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Wait for the command; kill it rather than leave it running if it overstays (or the test is stopped)."""
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return out, err


def _first_checkpoint(home: Path, process: subprocess.Popen[str], timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(home.glob("runs/*/checkpoints/step-*"))
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise AssertionError("no checkpoint was written")


@pytest.mark.timeout(900)
def test_ctrl_c_records_the_run_as_interrupted_and_the_same_command_resumes_it(tmp_path):
    args = ("--name", "qs-resume", "--limit", "2000", "--epochs", "2", "--checkpoint-every", "1")
    process = quickstart(tmp_path, *args, preexec_fn=_default_ctrl_c)
    checkpoint = _first_checkpoint(tmp_path, process)
    run_id = checkpoint.parents[1].name
    process.send_signal(signal.SIGINT)
    out, err = finish(process, timeout=120)

    assert process.returncode == 130, out + err
    assert "Traceback" not in err
    hint = rf"interrupted: run {run_id} is recorded as interrupted; the same command resumes it from step (\d+)$"
    said = re.search(hint, err.strip())
    assert said, err
    hub = Hub(home=tmp_path)
    assert hub.runs.get(run_id).status == "interrupted"

    again = quickstart(tmp_path, *args)
    out, err = finish(again, timeout=600)

    assert again.returncode == 0, out + err
    assert f"resumed run {run_id} from its checkpoint at step {said.group(1)}" in out
    assert [r.id for r in hub.runs.list()] == [run_id]
    assert hub.runs.get(run_id).status == "finished"
    assert hub.models.get("qs-resume").run_id == run_id
