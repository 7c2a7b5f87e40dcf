"""Reproductions: a run's config is re-trained as a job with its seed, the re-trained model and the claimed
package are scored in the sandbox, and the submission shows claimed vs reproduced; a run that registered
no model, an unknown run, or a config that does not build are refused at once, costing nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from oar._core.errors import InvalidInputError
from oar.competitions import sandbox
from oar.competitions.config import parse_spec
from oar.competitions.service import Competitions

from .conftest import spec_dict, wait_scored

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sandbox.available() is not None, reason=str(sandbox.available())),
]

TINY = {
    "name": "tiny-senti",
    "data": {
        "dataset": "chnsenti",
        "limit": 400,
        "valid_limit": 100,
        "test_limit": 100,
        "vocab_size": 300,
        "max_tokens": 32,
        "batch_size": 32,
    },
    "model": {"arch": "text-bow"},
    "trainer": {"epochs": 1, "seed": 1, "checkpoint": {"every_steps": 10}},
    "tensorboard": False,
}


def test_a_reproduction_is_retrained_scored_and_compared(hub, home, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "OAR_HOME": str(home)}
    trained = subprocess.run(
        [sys.executable, "-m", "oar.cli.main", "train", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr
    run = next(r for r in hub.runs.list() if r.metrics.get("model") == "tiny-senti:1")
    core = Competitions(hub)
    cup = core.create(parse_spec(spec_dict(name="repro-cup", dataset={"name": "chnsenti"}, test_rows=60), "t"), "a")

    with pytest.raises(InvalidInputError, match="no run 'nope'"):
        core.submit_reproduction(cup, "ivan", "nope")
    broken = hub.runs.start("train", {"job": {**TINY, "model": {"arch": "no-such-arch"}}}, None)
    hub.runs.finish(broken.id, "finished", {"model": "tiny-senti:1"}, [])
    with pytest.raises(InvalidInputError, match="unknown arch 'no-such-arch'"):
        core.submit_reproduction(cup, "ivan", broken.id)
    assert core.submissions(cup) == []

    submission = core.submit_reproduction(cup, "ivan", run.id)
    assert submission.kind == "reproduction" and submission.details["stage"] == "training"
    scored = wait_scored(core, submission.id, timeout=300)
    assert scored.status == "scored", scored.error
    details = scored.details
    assert details["reproduced_model"] == f"repro-{submission.id}:1"
    assert details["claimed_model"] == "tiny-senti:1" and details["run"] == run.id
    assert details["gap"] == pytest.approx(0.0, abs=1e-9) and details["flagged"] is False  # same seed, same model
    assert scored.public_score == pytest.approx(details["claimed_public"])
    assert "claimed_private" not in details

    from fastapi.testclient import TestClient

    from oar.studio.app import create_app
    from studio.conftest import PASSWORD, studio_config

    app = create_app(studio_config(home, f"sqlite:///{home / 'hub.db'}"), hub)
    accounts = app.state.services.accounts
    accounts.create_user("ivan", "member", PASSWORD)
    token = accounts.issue_token(accounts.create_user("boss", "admin", PASSWORD).id, "t")
    page = TestClient(app, headers={"authorization": f"Bearer {token}"}).get("/competitions/repro-cup")
    assert page.status_code == 200
    assert "reproduced; claimed" in page.text and "⚑" not in page.text
