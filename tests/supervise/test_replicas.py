"""ReplicatedDeployment: real ``oar serve`` replicas behind a real HAProxy, faults and scaling under load."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from oar._core.errors import InvalidInputError
from oar.client import ModelClient
from oar.supervise import port_is_free
from oar.supervise.autoscale import AutoscalePolicy
from oar.supervise.loadgen import LoadGenerator
from oar.supervise.replicas import ReplicaCount, ReplicatedDeployment

from .conftest import MODEL

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists("/usr/sbin/haproxy"), reason="needs haproxy")]
BODY = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0.5, -1, 2, 0.25]}]})
PATH = f"/v2/models/{MODEL}/infer"


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def not_listening(port: int) -> bool:
    """Nothing accepts on the port (the balancer's closed connections may hold it in TIME_WAIT a while)."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def load(deployment: ReplicatedDeployment, token: str, connections: int = 8) -> LoadGenerator:
    return LoadGenerator("127.0.0.1", deployment.port, PATH, BODY.encode(), connections, token, MODEL)


def test_replica_counts_parse_and_refuse_bad_values() -> None:
    assert ReplicaCount.parse(2) == ReplicaCount(2, 2) and not ReplicaCount.parse(2).autoscaled
    assert ReplicaCount.parse([1, 3]) == ReplicaCount(1, 3) == ReplicaCount.parse("1-3")
    assert ReplicaCount.parse("4") == ReplicaCount(4, 4)
    for bad in (0, [3, 1], [1, 2, 3], "two", True, [1, 99], None, 1.5):
        with pytest.raises(InvalidInputError, match="replicas"):
            ReplicaCount.parse(bad)


@pytest.mark.timeout(300)
def test_replicas_behind_one_endpoint_survive_kill_drain_and_rollover(hub, head_versions, tmp_path: Path) -> None:
    deployment, token = ReplicatedDeployment.create(MODEL, 1, tmp_path / "dep", ReplicaCount(2, 2), home=hub.home)
    try:
        state = deployment.start(timeout=90)
        assert json.loads(json.dumps(state)) == state and token not in json.dumps(state)
        assert set(deployment.balancer.states().values()) == {"UP"}
        headers = {"authorization": f"Bearer {token}"}
        answer = httpx.post(deployment.endpoint + PATH, content=BODY, headers=headers, timeout=10)
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"
        assert httpx.post(deployment.endpoint + PATH, content=BODY, timeout=10).status_code == 401
        x = {"x": np.asarray([[0.5, -1, 2, 0.25]], dtype=np.float32)}
        with ModelClient(deployment.grpc_endpoint, token=token) as grpc:  # HTTP/2 through the TCP frontend
            assert grpc.infer(MODEL, x)["output"].shape == (1, 3)

        # kill -9 one replica under steady load: the balancer retries elsewhere, the supervisor replaces it
        victim = deployment.replicas["r0"].spawner
        old_pid = victim.pid
        with load(deployment, token) as steady:
            time.sleep(1.0)
            os.kill(old_pid, signal.SIGKILL)
            wait_for(lambda: deployment.balancer.states().get("r0") == "DOWN", 10)  # health checks took it out
            wait_for(lambda: victim.pid != old_pid and deployment.replicas["r0"].ready(), 60)
            wait_for(lambda: deployment.balancer.states().get("r0") == "UP", 30)
            time.sleep(1.0)
        assert steady.result.failed == 0 and steady.result.ok > 0, steady.result.reasons
        assert deployment._supervisor.record("r0")["restarts"] == 1

        # scale up, then drain the newest away under load: nothing fails, its port is freed
        with load(deployment, token) as scaling:
            deployment.scale_to(3)
            assert set(deployment.balancer.states()) == {"r0", "r1", "r2"}
            time.sleep(1.0)
            ports = deployment.replicas["r2"].ports
            deployment.scale_to(2)
            time.sleep(0.5)
        assert scaling.result.failed == 0 and scaling.result.ok > 0, scaling.result.reasons
        assert set(deployment.replicas) == {"r0", "r1"} and all(not_listening(p) for p in ports)

        # a rollover across the replicas, one at a time, under load
        with load(deployment, token) as rolling:
            time.sleep(0.5)
            deployment.rollover(2)
            time.sleep(1.0)
        assert rolling.result.failed == 0, rolling.result.reasons
        assert set(rolling.result.versions) == {"1", "2"}
        assert {s.version for s in deployment.replicas.values()} == {2}

        # a restarted caller re-adopts the very same processes
        pids = {n: s.spawner.pid for n, s in deployment.replicas.items()}
        deployment.close()
        adopted = ReplicatedDeployment.from_state(json.loads(json.dumps(deployment.state())))
        adopted.resume()
        assert {n: s.spawner.pid for n, s in adopted.replicas.items()} == pids
        assert adopted.ready() and adopted.version == 2
        rows = adopted.figures(window=0.3)
        assert [r["name"] for r in rows] == ["r0", "r1"] and all(r["node"] == "local" for r in rows)
        deployment = adopted
    finally:
        deployment.undeploy()
    assert not_listening(deployment.port) and port_is_free(deployment.balancer.grpc_port)


@pytest.mark.timeout(300)
def test_autoscaling_follows_a_load_step_up_and_down(hub, head_versions, tmp_path: Path) -> None:
    policy = AutoscalePolicy(target_in_flight=2, up_cooldown_s=1, down_cooldown_s=2, interval_s=0.25, window_s=1)
    deployment, token = ReplicatedDeployment.create(
        MODEL, 1, tmp_path / "auto", ReplicaCount(1, 2), home=hub.home, policy=policy
    )
    try:
        deployment.start(timeout=90)
        assert len(deployment.replicas) == 1
        with load(deployment, token, connections=32) as busy:
            wait_for(lambda: len(deployment.replicas) == 2, 60)
            time.sleep(1.0)
        assert busy.result.failed == 0, busy.result.reasons
        wait_for(lambda: len(deployment.scale_events) >= 2, 60)
        assert [count for _, count in deployment.scale_events] == [2, 1] and len(deployment.replicas) == 1
    finally:
        deployment.undeploy()
