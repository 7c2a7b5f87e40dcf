"""The rules without the studio: metrics against scikit-learn, the competition file's checks, an organizer's
metric from the bundle, failed and cancelled submissions that cost no quota, and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from oar._core.errors import InvalidInputError
from oar.competitions import hidden
from oar.competitions.config import parse_spec, read_spec
from oar.competitions.metrics import METRICS
from oar.competitions.service import Competitions

from .conftest import spec_dict, wait_scored


def test_metrics_agree_with_scikit_learn():
    from sklearn import metrics

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    assert METRICS["accuracy"].fn(y, p) == pytest.approx(metrics.accuracy_score(y, p))
    assert METRICS["macro_f1"].fn(y, p) == pytest.approx(metrics.f1_score(y, p, average="macro"))
    values = rng.normal(size=200)
    assert METRICS["rmse"].fn(values, values + 0.5) == pytest.approx(0.5)
    binary, scores = rng.integers(0, 2, 300), np.round(rng.random(300), 1)  # rounded: many ties
    assert METRICS["auc"].fn(binary, scores) == pytest.approx(metrics.roc_auc_score(binary, scores))


def test_the_competition_file_is_checked_in_full():
    with pytest.raises(InvalidInputError) as caught:
        parse_spec(
            spec_dict(
                name="Bad Name",
                phases=[
                    {"name": "a", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
                ],
                limits={"daily": 0},
            ),
            "cup.yaml",
        )
    lines = str(caught.value).splitlines()
    assert lines[0] == "cup.yaml is invalid:"
    assert any(line.startswith("  name:") for line in lines)
    assert "  phases.0: phase 'a' ends before it starts" in lines
    assert any(line.startswith("  limits.daily:") for line in lines)


def test_an_ended_competition_refuses_submissions_and_shows_its_private_board(hub):
    from datetime import UTC, datetime, timedelta

    past = datetime.now(UTC) - timedelta(hours=2)
    phases = [{"name": "main", "start": past.isoformat(), "end": (past + timedelta(hours=1)).isoformat()}]
    core = Competitions(hub)
    competition = core.create(parse_spec(spec_dict(name="past-cup", phases=phases), "t"), "admin")
    with pytest.raises(Exception, match="competition 'past-cup' has ended: no phase takes submissions"):
        core.submit_file(competition, "gina", b"id,prediction\n", "p.csv")
    assert core.leaderboard(competition, "private") == []


def test_job_kinds_name_their_worker_and_refuse_others():
    from oar.jobs.kinds import worker_module

    assert worker_module({}) == "oar.jobs.worker"
    assert worker_module({"kind": "score"}) == "oar.competitions.worker"
    with pytest.raises(InvalidInputError, match="unknown job kind 'mine'"):
        worker_module({"kind": "mine"})


def _bundle(tmp_path: Path, name: str, metric_code: str) -> Path:
    (tmp_path / "metric.py").write_text(metric_code)
    spec = spec_dict(name=name, metric={"file": "metric.py", "function": "score"})
    path = tmp_path / "cup.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_metric_that_fails_costs_no_quota_and_never_quotes_labels(hub, home, tmp_path):
    code = "def score(y_true, y_pred):\n    raise ValueError(f'labels were {list(y_true)}')\n"
    path = _bundle(tmp_path, "broken-metric", code)
    core = Competitions(hub)
    competition = core.create(read_spec(path), "admin", bundle=path.parent)
    ids = hidden.input_ids(home, competition.name)
    content = ("id,prediction\n" + "".join(f"{i},1\n" for i in ids)).encode()
    before = core.quota(competition, "carol")
    failed = wait_scored(core, core.submit_file(competition, "carol", content, "p.csv").id)
    assert failed.status == "failed"
    assert failed.error == "the competition's metric failed on this submission (ValueError)"
    assert core.quota(competition, "carol") == before
    queued = core.submit_file(competition, "carol", content, "p.csv")
    cancelled = core.cancel(competition, "carol", queued.id)
    if cancelled.status != "cancelled":  # it was already placed: the scheduler stops it
        cancelled = wait_scored(core, queued.id)
    assert cancelled.status in ("cancelled", "failed")
    assert core.quota(competition, "carol") == before


def test_the_command_line_creates_submits_and_ranks(hub, home, tmp_path):
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(spec_dict(name="cli-cup")))
    env = {**os.environ, "OAR_HOME": str(home)}

    def oar(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "oar.cli.main", "competitions", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    created = oar("create", str(path))
    assert created.returncode == 0, created.stderr
    assert "60 hidden test rows" in created.stdout
    again = oar("create", str(path))
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr
    ids = hidden.input_ids(home, "cli-cup")
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(f'{{"id": "{i}", "prediction": 0}}\n' for i in ids[:-1]))
    refused = oar("submit", "cli-cup", "--file", str(predictions), "--user", "dora")
    assert refused.returncode == 1 and "1 of 60 ids missing" in refused.stderr
    predictions.write_text("".join(f'{{"id": "{i}", "prediction": 0}}\n' for i in ids))
    submitted = oar("submit", "cli-cup", "--file", str(predictions), "--user", "dora")
    assert submitted.returncode == 0, submitted.stderr
    core = Competitions(hub)
    submission = core.submissions(core.store.get("cli-cup"), "dora")[0]
    assert wait_scored(core, submission.id).status == "scored"
    board = oar("leaderboard", "cli-cup")
    assert board.returncode == 0 and "dora" in board.stdout
    private = oar("leaderboard", "cli-cup", "--board", "private")
    assert private.returncode == 1 and "revealed at the end" in private.stderr


@pytest.mark.slow
def test_a_killed_scoring_worker_is_requeued_and_the_submission_still_scored(hub, home, tmp_path):
    import signal
    import time

    code = (
        "import pathlib, time\n"
        "def score(y_true, y_pred):\n"
        "    marker = pathlib.Path(__file__).with_name('slow-once')\n"
        "    if not marker.exists():\n"
        "        marker.touch()\n"
        "        time.sleep(60)\n"
        "    return float((y_true == y_pred).mean())\n"
    )
    path = _bundle(tmp_path, "killed-cup", code)
    core = Competitions(hub)
    competition = core.create(read_spec(path), "admin", bundle=path.parent)
    ids = hidden.input_ids(home, competition.name)
    content = ("id,prediction\n" + "".join(f"{i},1\n" for i in ids)).encode()
    submission = core.submit_file(competition, "frank", content, "p.csv")
    marker = hidden.competition_dir(home, competition.name) / hidden.HIDDEN / "slow-once"
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "the first attempt never reached the metric"
        time.sleep(0.2)
    pid = int((home / "jobs" / submission.job_id / "attempt-1" / "pid").read_text().split()[0])
    os.killpg(pid, signal.SIGKILL)  # the worker dies with no exit code: as if its node vanished
    scored = wait_scored(core, submission.id)
    assert scored.status == "scored" and scored.public_score is not None
    from oar.jobs.store import JobStore

    store = JobStore.open(hub)
    deadline = time.monotonic() + 30
    while not (job := store.get(submission.job_id)).done and time.monotonic() < deadline:
        time.sleep(0.2)  # the worker recorded the score just before it exited
    assert job.state == "succeeded" and job.preemptions == 1
    assert any("vanished" in e.reason or "killed" in e.reason for e in job.events)


def test_competitions_and_submissions_round_trip_on_both_databases(database_url, tmp_path):
    import oar.jobs  # noqa: F401
    from oar.competitions.store import CompetitionStore
    from oar.hub import Hub

    hub = Hub(home=tmp_path, url=database_url)
    try:
        competition = Competitions(hub).create(parse_spec(spec_dict(name="db-cup"), "t"), "admin")
        store = CompetitionStore.open(hub)
        added = store.add_submission(competition_id=competition.id, user="hana", kind="file", source="p.csv", note="")
        assert store.update(added.id, only_if={"queued"}, status="scored", public_score=0.5, private_score=0.25)
        assert not store.update(added.id, only_if={"queued"}, status="failed")  # a compare-and-set
        again = store.submissions(competition.id, "hana")[0]
        assert (again.status, again.public_score, again.private_score) == ("scored", 0.5, 0.25)
        assert store.get("db-cup").ends_at == competition.ends_at
    finally:
        hub.close()
