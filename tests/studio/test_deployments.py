"""Deployments for real: the studio starts and supervises `oar serve`, the endpoint answers with its token,
an alias move rolls it over with no failed request, it survives a studio restart, undeploy frees the port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from oar.client import ModelClient
from oar.supervise import port_is_free

from .conftest import build_world, studio_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
API = "/api/v1"


def _wait(client, deployment_id: str, status: str = "running", version: int | None = None, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"{API}/deployments/{deployment_id}").json()
        if body["status"] == status and (version is None or body["version"] == version):
            return body
        if body["status"] == "failed":
            raise AssertionError(body["message"])
        time.sleep(0.3)
    raise AssertionError(f"deployment {deployment_id} did not reach {status}: {body}")


@pytest.fixture()
def world(tmp_path, numeric_package, monkeypatch):
    monkeypatch.setenv("OAR_HOME", str(tmp_path / "home"))  # the served processes read the same hub
    built = build_world(f"sqlite:///{tmp_path / 'home' / 'hub.db'}", tmp_path / "home", numeric_package)
    yield built
    built.app.state.services.deployments.close(stop_processes=True)
    built.app.state.services.hub.close()


def test_deploy_call_roll_over_on_an_alias_move_restart_and_undeploy(world, numeric_package):
    from oar.studio.app import create_app

    alice = world.client("alice")
    alice.__enter__()  # runs the app's lifespan: the supervisor
    alice.put(f"{API}/models/sentiment/aliases/production", json={"version": 1})
    made = alice.post(f"{API}/deployments", json={"model": "sentiment@production"})
    assert made.status_code == 201, made.text
    deployment_id = made.json()["id"]
    running = _wait(alice, deployment_id, version=1)
    endpoint = running["endpoint"]
    token = alice.get(f"{API}/deployments/{deployment_id}/token").json()["token"]
    assert httpx.post(f"{endpoint}/v2/models/sentiment/infer", json={"inputs": []}).status_code == 401

    x = np.ones((2, 4), dtype=np.float32)
    with ModelClient(endpoint, token=token) as client:
        direct = client.infer("sentiment", {"x": x})["output"]
    proxied = alice.post(f"{API}/deployments/{deployment_id}/predict", json={"inputs": {"x": x.tolist()}}).json()
    assert np.allclose(proxied["outputs"]["output"], direct) and proxied["model_id"] == "sentiment:1"
    bad = alice.post(f"{API}/deployments/{deployment_id}/predict", json={"inputs": {"nope": [1]}})
    assert bad.status_code == 422 and "inputs must be x" in bad.json()["error"]["message"]

    failures: list[str] = []
    answered = []
    stop = threading.Event()

    def traffic() -> None:
        with ModelClient(endpoint, token=token) as client:
            while not stop.is_set():
                try:
                    client.infer("sentiment", {"x": x})
                    answered.append(1)
                except Exception as exc:  # every failure counts
                    failures.append(repr(exc))

    load = threading.Thread(target=traffic)
    load.start()
    try:
        alice.put(f"{API}/models/sentiment/aliases/production", json={"version": 2})
        rolled = _wait(alice, deployment_id, version=2)
        time.sleep(0.5)
        busy = alice.get(f"{API}/deployments/{deployment_id}/figures").json()  # one second of live traffic
    finally:
        stop.set()
        load.join(30)
    assert failures == [] and len(answered) > 10
    assert rolled["endpoint"] == endpoint  # same endpoint, new version
    assert busy["status"] == "running" and busy["requests"] > 0
    # serving cost: one on-demand node's price over the requests it answered in that second
    per_million = busy["node_price_per_hour"] / 3600 / busy["requests_per_second"] * 1_000_000
    assert busy["cost_per_million_requests"] == pytest.approx(per_million, rel=1e-6)

    # The studio goes away and comes back: the deployment is adopted from the database, still serving.
    alice.__exit__(None, None, None)
    world.app.state.services.deployments.close()
    again = create_app(studio_config(world.home, str(world.hub.url)), world.hub)
    from fastapi.testclient import TestClient

    with TestClient(again, headers={"authorization": f"Bearer {world.tokens['alice']}"}) as restarted:
        assert _wait(restarted, deployment_id, version=2)["endpoint"] == endpoint
        with ModelClient(endpoint, token=token) as client:
            assert client.infer("sentiment", {"x": x})["output"].shape == (2, 3)
        port = int(endpoint.rsplit(":", 1)[1])
        assert restarted.delete(f"{API}/deployments/{deployment_id}").status_code == 204
        assert restarted.get(f"{API}/deployments/{deployment_id}").status_code == 404
        assert port_is_free(port)
    again.state.services.deployments.close()


def _oar(*args: str, home) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    env.pop("OAR_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "oar.cli.main", *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_stopping_the_studio_leaves_deployments_serving_and_stop_all_ends_them(world, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OAR_HOME": str(world.home)}
    env.pop("OAR_DATABASE_URL", None)
    log = tmp_path / "studio.log"
    with open(log, "w") as out:
        studio = subprocess.Popen(
            [sys.executable, "-m", "oar.cli.main", "studio", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    try:
        base = f"http://127.0.0.1:{port}"
        alice = httpx.Client(base_url=base, headers={"authorization": f"Bearer {world.tokens['alice']}"}, timeout=30)
        deadline = time.monotonic() + 120
        while True:
            assert studio.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                alice.get(f"{API}/health")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        made = alice.post(f"{API}/deployments", json={"model": "sentiment:1"})
        assert made.status_code == 201, made.text
        endpoint = _wait(alice, made.json()["id"])["endpoint"]

        stopped = _oar("studio", "stop", home=world.home)
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped" in stopped.stderr and "1 deployment(s) keep serving" in stopped.stderr
        assert studio.wait(30) is not None
        assert httpx.get(f"{endpoint}/v2/health/ready", timeout=5).status_code == 200  # by design: still serving

        everything = _oar("studio", "stop", "--all", home=world.home)
        assert everything.returncode == 0, everything.stderr
        assert "no studio is running" in everything.stderr and "1 deployment(s) stopped" in everything.stderr
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{endpoint}/v2/health/ready", timeout=5)
        assert world.app.state.services.deployments.live_count() == 0  # the next start brings nothing back
    finally:
        if studio.poll() is None:
            studio.terminate()
            studio.wait(30)
