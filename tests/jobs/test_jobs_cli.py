"""``oar jobs`` for real: submit starts a background scheduler, logs -f waits for the end, cost shows the ledger."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from jobs_helpers import write_job


def oar(home, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OAR_HOME": str(home), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "oar.cli.main", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_submit_follow_show_cancel_and_cost_from_the_command_line(tmp_path):
    submitted = oar(tmp_path, "jobs", "submit", str(write_job(tmp_path)), "--pool", "spot", "--priority", "3")
    assert submitted.returncode == 0, submitted.stderr
    job_id, run_id = re.search(r"job (\w+) queued on spot \(run (\w+)\)", submitted.stdout).groups()
    assert "started a scheduler for local" in submitted.stdout
    followed = oar(tmp_path, "jobs", "logs", job_id, "-f", timeout=600)
    assert followed.returncode == 0 and "--- attempt 1 on spot" in followed.stdout
    assert f"job {job_id} succeeded" in followed.stdout
    shown = oar(tmp_path, "jobs", "show", job_id)
    assert shown.returncode == 0 and "succeeded" in shown.stdout and "priority 3" in shown.stdout
    cost = oar(tmp_path, "runs", "cost", run_id)
    assert cost.returncode == 0, cost.stderr
    dollars = float(re.search(r"total \$([0-9.]+) \(spot \$", cost.stdout).group(1))
    assert dollars > 0 and "0 preemption(s)" in cost.stdout
    listed = oar(tmp_path, "jobs", "list")
    assert job_id in listed.stdout and "succeeded" in listed.stdout
    again = oar(tmp_path, "jobs", "cancel", job_id)
    assert again.returncode == 1 and f"job {job_id} already succeeded" in again.stderr
    missing = oar(tmp_path, "runs", "cost", "nope")
    assert missing.returncode == 1 and "no run 'nope'" in missing.stderr and "Traceback" not in missing.stderr
