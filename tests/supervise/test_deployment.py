"""ServeDeployment: real ``oar serve`` processes of a real hub model, supervised, rolled over under load."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from oar._core.errors import InvalidInputError, OarError
from oar.supervise import (
    RestartPolicy,
    ServeDeployment,
    StartFailedError,
    Status,
    Supervisor,
    port_is_free,
)
from oar.supervise.loadgen import LoadGenerator

from .conftest import MODEL

pytestmark = pytest.mark.slow
X = [[0.5, -1.0, 2.0, 0.25]]
BODY = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": X[0]}]}).encode()


def infer(deployment: ServeDeployment, token: str | None, version: int | None = None) -> httpx.Response:
    path = f"/v2/models/{MODEL}" + (f"/versions/{version}" if version else "") + "/infer"
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(deployment.endpoint + path, content=BODY, headers=headers, timeout=10)


def expected(hub, version: int) -> np.ndarray:
    """What the registered package itself computes (the served answer must match it)."""
    from oar.runtime import load_runtime

    runtime = load_runtime(hub.open_package(MODEL, version))
    return next(iter(runtime.infer({"x": np.asarray(X, dtype=np.float32)}).values()))


def outputs(response: httpx.Response) -> np.ndarray:
    return np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32)


def stored(deployment: ServeDeployment) -> dict:
    return json.loads(json.dumps(deployment.state()))


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.timeout(180)
def test_a_deployment_serves_its_version_behind_a_token_it_never_stores(hub, head_versions, tmp_path: Path) -> None:
    from oar import ModelClient

    deployment, token = ServeDeployment.create(MODEL, 2, tmp_path / "dep", home=hub.home)
    try:
        state = deployment.start(timeout=90)
        assert json.loads(json.dumps(state)) == state and state["version"] == 2
        assert token not in json.dumps(state)
        cmdline = Path(f"/proc/{deployment.spawner.pid}/cmdline").read_bytes().decode()
        assert token not in cmdline and "admin" not in cmdline
        assert infer(deployment, None).status_code == 401
        assert infer(deployment, "wrong").status_code == 401
        answer = infer(deployment, token)
        assert answer.status_code == 200 and answer.json()["model_version"] == "2"
        np.testing.assert_allclose(outputs(answer), expected(hub, 2).ravel(), rtol=1e-6)
        x = {"x": np.asarray(X, dtype=np.float32)}
        with ModelClient(endpoint=deployment.grpc_endpoint, token=token) as grpc:
            answer = next(iter(grpc.infer(MODEL, x).values()))
        np.testing.assert_allclose(np.asarray(answer).ravel(), expected(hub, 2).ravel(), rtol=1e-6)
        with ModelClient(endpoint=deployment.grpc_endpoint, token="wrong") as grpc, pytest.raises(OarError):
            grpc.infer(MODEL, x)
        with LoadGenerator("127.0.0.1", deployment.port, f"/v2/models/{MODEL}/infer", BODY, 4, token, MODEL):
            figures = deployment.figures(window=1.0)
        assert figures.requests > 0 and figures.errors == 0 and figures.p50_ms is not None
        assert figures.p50_ms <= figures.p99_ms

        path = f"/v2/models/{MODEL}/infer"
        with LoadGenerator("127.0.0.1", deployment.port, path, BODY, 8, token, MODEL, rate=200) as paced:
            time.sleep(1.5)
        assert paced.result.failed == 0 and paced.result.requests_per_s == pytest.approx(200, rel=0.1)
        with LoadGenerator("127.0.0.1", deployment.port, path, BODY, 2, "wrong", MODEL) as refused:
            time.sleep(0.3)
        assert refused.result.ok == 0 and refused.result.failed == sum(refused.result.reasons.values()) > 0
        assert set(refused.result.reasons) == {"HTTP 401"}
    finally:
        deployment.undeploy()


@pytest.mark.timeout(180)
def test_a_start_failure_reports_the_servers_own_reason(hub, head_versions, tmp_path: Path) -> None:
    deployment, _ = ServeDeployment.create(MODEL, 99, tmp_path / "dep", home=hub.home)
    with pytest.raises(StartFailedError, match="exited with code 1") as failure:
        deployment.start(timeout=90)
    assert "99" in failure.value.log_tail and "sv-head" in failure.value.log_tail
    assert deployment.spawner.poll() == 1
    deployment.undeploy()


def test_bad_deployment_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="resolve aliases first"):
        ServeDeployment.create(MODEL, "latest", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="name and the version separately"):
        ServeDeployment.create(f"{MODEL}:1", 1, tmp_path)
    with pytest.raises(InvalidInputError, match="--workers"):
        ServeDeployment.create(MODEL, 1, tmp_path, extra_args=("--workers", "2"))
    with pytest.raises(InvalidInputError, match="not a stored"):
        ServeDeployment.from_state({"kind": "local"})


@pytest.mark.timeout(240)
def test_a_rollover_under_load_fails_no_request_and_undeploy_frees_the_ports(
    hub, head_versions, tmp_path: Path
) -> None:
    deployment, token = ServeDeployment.create(MODEL, 1, tmp_path / "dep", home=hub.home)
    deployment.start(timeout=90)
    path = f"/v2/models/{MODEL}/infer"
    try:
        with LoadGenerator("127.0.0.1", deployment.port, path, BODY, 64, token, MODEL) as load:
            time.sleep(1.5)
            deployment.rollover(2)
            time.sleep(1.0)
            deployment.rollover(3)
            time.sleep(1.5)
        result = load.result
        # Correctness only: every request answered, by each version in turn. How many requests per second a
        # rollover sustains is a figure of this machine, measured by bench/deploy.py beside a steady run.
        assert result.failed == 0 and result.ok > 0, result.reasons
        assert set(result.versions) == {"1", "2", "3"}, result.versions
        assert deployment.version == 3 and f"{MODEL}:3" in deployment.state()["spawner"]["spec"]["argv"]
        np.testing.assert_allclose(outputs(infer(deployment, token)), expected(hub, 3).ravel(), rtol=1e-6)
        assert infer(deployment, token, version=1).status_code == 404  # retired
        with pytest.raises(OarError, match="specific:3,99"):
            deployment.rollover(99)  # no such version: version 3 keeps serving alone
        assert infer(deployment, token).json()["model_version"] == "3"
    finally:
        ports = deployment.ports
        deployment.undeploy()
    assert all(port_is_free(port) for port in ports)
    assert not (tmp_path / "dep" / "admin-token").exists()


@pytest.mark.timeout(300)
def test_a_killed_server_is_restarted_and_a_new_supervisor_re_adopts_it(hub, head_versions, tmp_path: Path) -> None:
    records: list[dict] = []

    def persist(key: str, record: dict) -> None:
        records.append(json.loads(json.dumps(record)))

    policy = RestartPolicy(initial_delay=0.2, stable_after=60, start_timeout=90)
    deployment, token = ServeDeployment.create(MODEL, 1, tmp_path / "dep", home=hub.home)
    deployment.start(timeout=90)
    deployment.rollover(2)  # a restart must bring back the version served last, not the first one
    first_pid = deployment.spawner.pid
    supervisor = Supervisor(on_change=persist, policy=policy, interval=0.05).start()
    try:
        supervisor.watch("dep", deployment.spawner, ready=deployment.ready)
        os.kill(first_pid, signal.SIGKILL)
        wait_for(lambda: supervisor.record("dep")["restarts"] == 1 and supervisor.record("dep")["status"] == "running")
        crash = next(r for r in records if r["status"] == Status.BACKOFF)
        assert crash["last_exit_code"] == -signal.SIGKILL
        assert deployment.spawner.pid != first_pid
        assert infer(deployment, token).json()["model_version"] == "2"  # same port, same token, same version

        row = stored(deployment)  # what the caller's database holds
        supervisor.close()  # the supervising process goes away; the server keeps running
        adopted = ServeDeployment.from_state(row)
        assert adopted.spawner.poll() is None and adopted.spawner.pid == deployment.spawner.pid
        supervisor = Supervisor(on_change=persist, policy=policy, interval=0.05).start()
        supervisor.watch("dep", adopted.spawner, ready=adopted.ready)
        assert supervisor.record("dep")["status"] == "running" and supervisor.record("dep")["restarts"] == 0
        adopted.rollover(3)  # the re-adopted deployment still controls its server
        assert infer(adopted, token).json()["model_version"] == "3"
        supervisor.unwatch("dep")
        assert adopted.spawner.poll() is not None
    finally:
        supervisor.close()
        deployment.undeploy()
