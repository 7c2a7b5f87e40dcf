"""Errors oar raises on purpose keep their message (and Retry-After where waiting helps); only unexpected
errors are hidden behind "internal error"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from oar._core.errors import ModelNotReadyError
from oar.studio import errors
from oar.studio.orm import DeploymentRow

pytestmark = pytest.mark.timeout(120)
API = "/api/v1"


def _starting_deployment(world) -> str:  # type: ignore[no-untyped-def]
    """A deployment as the studio records it the moment after "deploy", before its server answers."""
    now = datetime.now(UTC)
    with world.hub.sessions() as db:
        db.add(
            DeploymentRow(
                id="d0starting", model="sentiment", ref="sentiment:2", version=2, owner="alice",
                status="starting", state={}, message="", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        db.commit()
    return "d0starting"


def test_calling_a_deployment_that_is_still_starting_says_not_ready_with_retry_after(world):
    deployment = _starting_deployment(world)
    answer = world.client("alice").post(f"{API}/deployments/{deployment}/predict", json={"inputs": {"x": [[1.0]]}})
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    message = answer.json()["error"]["message"]
    assert "not ready" in message and deployment in message and "internal error" not in message


def test_an_unexpected_error_is_hidden_and_a_deliberate_500_keeps_its_message():
    app = FastAPI()
    errors.install(app)

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret detail from deep inside")

    @app.get("/api/v1/busy")
    def busy() -> None:
        raise ModelNotReadyError("model 'm' is loading")

    client = TestClient(app, raise_server_exceptions=False)
    hidden = client.get("/api/v1/boom")
    assert hidden.status_code == 500 and "secret detail" not in hidden.text
    assert "internal error" in hidden.json()["error"]["message"]
    kept = client.get("/api/v1/busy")
    assert kept.status_code == 503 and kept.json()["error"]["message"] == "model 'm' is loading"
