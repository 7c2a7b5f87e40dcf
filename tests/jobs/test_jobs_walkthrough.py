"""The walk-through of docs/jobs.md ("A first run, step by step"), run as written, as a bash script.

The block is taken from the document itself, so the page cannot drift from what the commands do: the
job file, `oar train` on it, the pools file, `submit` (which starts a background scheduler), the
foreground scheduler with the simulator taking over, `logs -f` to the end, `show`, `list`.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"


def walkthrough() -> str:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## A first run, step by step", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_the_walkthrough_block_is_found_and_has_its_commands():
    script = walkthrough()
    for command in ("oar train job.yaml", "oar jobs submit", "oar jobs scheduler", "oar jobs logs", "wait"):
        assert command in script


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_documented_walkthrough_runs_as_written(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "oar"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m oar.cli.main "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "work"
    work.mkdir()
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {
        **os.environ,
        "OAR_HOME": str(tmp_path / "home"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
    }
    env.pop("OAR_POOLS", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-4000:] + out[-4000:]
    assert "Traceback" not in done.stderr
    assert "finished 32 steps" in out  # `oar train` on the job file with its resources section
    assert "stopped the background scheduler" in out  # the foreground scheduler took over from submit's
    assert "--- attempt 1 on spot" in out and "checkpoint at step 4" in out and "step 32/32" in out
    job_id = re.search(r"job (\w+) succeeded", out).group(1)
    assert f"job {job_id} digits-tiny: succeeded" in out  # `oar jobs show`
    notices = [float(n) for n in re.findall(r"simulated spot preemption: node \S+, ([0-9.]+) s notice", out)]
    assert all(n >= 10.0 for n in notices)  # the floor: no 33 ms notice
