"""A deployment with replicas: deployed from the model page in a real browser, two `oar serve` replicas behind
one HAProxy endpoint, each shown with its node and figures, adopted again after a studio restart."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from oar.client import ModelClient

from .browser import chromium, serving, shot
from .conftest import PASSWORD, build_world, studio_config
from .test_cli import _oar

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not os.path.exists("/usr/sbin/haproxy"), reason="needs haproxy"),
]
API = "/api/v1"


def _wait(client, deployment_id: str, timeout: float = 180) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"{API}/deployments/{deployment_id}").json()
        if body["status"] == "running":
            return body
        assert body["status"] != "failed", body["message"]
        time.sleep(0.3)
    raise AssertionError(f"deployment {deployment_id} is not running: {body}")


def test_replicas_are_deployed_from_the_page_shown_per_replica_and_readopted(
    tmp_path: Path, numeric_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("OAR_HOME", str(home))  # the served processes read the same hub
    world = build_world(f"sqlite:///{home / 'hub.db'}", home, numeric_package)
    alice = world.client("alice")
    for bad in (0, [3, 1], "many", [1, 2, 3]):
        refused = alice.post(f"{API}/deployments", json={"model": "sentiment:1", "replicas": bad})
        assert refused.status_code in (400, 422), refused.text
    x = np.ones((2, 4), dtype=np.float32)
    with serving(world.app) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/signin")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("form[action='/signin'] button[type=submit]")
        page.wait_for_url(f"{url}/")
        page.goto(f"{url}/models/sentiment")
        page.select_option("#deploy-form select[name=model]", "sentiment:1")
        page.fill("#deploy-replicas", "2")
        page.click("#deploy-form button[type=submit]")
        page.wait_for_url(f"{url}/deployments/*")
        deployment_id = page.url.rsplit("/", 1)[1]
        running = _wait(alice, deployment_id)
        assert running["replicas"] == [2, 2]
        token = alice.get(f"{API}/deployments/{deployment_id}/token").json()["token"]
        with ModelClient(running["endpoint"], token=token) as client:
            assert client.infer("sentiment", {"x": x})["output"].shape == (2, 3)
        page.reload()
        page.wait_for_selector("#replicas tr[data-replica='r1']", timeout=20000)
        rows = page.locator("#replicas tbody tr")
        assert rows.count() == 2 and "this machine" in rows.nth(0).inner_text()
        shot(page, "deployments-replicas")
        assert errors == []

        cli_home = tmp_path / "cli"
        assert _oar("login", url, "--token", world.tokens["alice"], home=cli_home).returncode == 0
        listed = _oar("deployments", "list", home=cli_home)
        assert listed.returncode == 0 and f"{deployment_id}  sentiment:1  v1  running" in listed.stdout
        shown = _oar("deployments", "show", deployment_id, home=cli_home)
        assert shown.returncode == 0 and "  r0  running  node local" in shown.stdout and "  r1  " in shown.stdout
        for bad, message in (("0", "1 <= min <= max"), ("two", "N or MIN-MAX"), ("3-1", "1 <= min <= max")):
            refused = _oar("deployments", "deploy", "sentiment:1", "--replicas", bad, home=cli_home)
            assert refused.returncode == 1 and message in refused.stderr and "Traceback" not in refused.stderr
    figures = alice.get(f"{API}/deployments/{deployment_id}/figures").json()
    assert [r["name"] for r in figures["replicas"]] == ["r0", "r1"] and figures["replica_count"] == 2
    pids = {r["name"]: r["endpoint"] for r in figures["replicas"]}

    # the studio restarts: the same replicas and balancer are adopted from the database
    world.app.state.services.deployments.close()
    from fastapi.testclient import TestClient

    from oar.studio.app import create_app

    again = create_app(studio_config(home, str(world.hub.url)), world.hub)
    with TestClient(again, headers={"authorization": f"Bearer {world.tokens['alice']}"}) as restarted:
        assert _wait(restarted, deployment_id)["endpoint"] == running["endpoint"]
        replicas = restarted.get(f"{API}/deployments/{deployment_id}/figures").json()["replicas"]
        assert {r["name"]: r["endpoint"] for r in replicas} == pids
        with ModelClient(running["endpoint"], token=token) as client:
            assert client.infer("sentiment", {"x": x})["output"].shape == (2, 3)
        assert restarted.delete(f"{API}/deployments/{deployment_id}").status_code == 204
    again.state.services.deployments.close()
    world.hub.close()
