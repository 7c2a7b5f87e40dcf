"""Replicas on a real two-node Ray cluster: placement, re-adoption after a restart, a node lost under load.

Each node declares ``{"oar-serve": 2}``; a replica asks for one and is spread over the nodes. Removing a node
is a real loss (its raylet and every actor on it die, and with them the replica's process).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from oar.supervise.loadgen import LoadGenerator  # noqa: E402
from oar.supervise.ray_spawner import RaySpawner  # noqa: E402
from oar.supervise.replicas import ReplicaCount, ReplicatedDeployment  # noqa: E402

from .conftest import MODEL  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists("/usr/sbin/haproxy"), reason="needs haproxy")]
BODY = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0.5, -1, 2, 0.25]}]})
FAST_FAILURE_DETECTION = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}


@pytest.fixture(scope="module")
def cluster(ray_retried):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    head = {"num_cpus": 0, "include_dashboard": False, "_system_config": FAST_FAILURE_DETECTION}
    cluster = ray_retried(lambda: Cluster(initialize_head=True, head_node_args=head))
    for _ in range(2):
        ray_retried(lambda: cluster.add_node(num_cpus=1, resources={"oar-serve": 2}))
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.mark.timeout(420)
def test_replicas_spread_over_ray_nodes_are_readopted_and_survive_a_node_loss(
    cluster, hub, head_versions, tmp_path: Path
) -> None:
    placement = {"address": cluster.address, "resources": {"oar-serve": 1}}
    deployment, token = ReplicatedDeployment.create(
        MODEL, 1, tmp_path / "dep", ReplicaCount(2, 2), home=hub.home, ray=placement
    )
    try:
        deployment.start(timeout=120)
        spawners = {name: served.spawner for name, served in deployment.replicas.items()}
        assert all(isinstance(s, RaySpawner) for s in spawners.values())
        nodes = {name: s.node_id for name, s in spawners.items()}
        assert len(set(nodes.values())) == 2, nodes  # spread: one replica on each node

        # a restarted caller finds the same actors and processes from the stored state alone
        deployment.close()
        stored = json.loads(json.dumps(deployment.state()))
        adopted = ReplicatedDeployment.from_state(stored)
        assert {n: s.spawner.node_id for n, s in adopted.replicas.items()} == nodes
        assert {n: s.spawner.pid for n, s in adopted.replicas.items()} == {n: s.pid for n, s in spawners.items()}
        assert all(s.spawner.poll() is None for s in adopted.replicas.values())
        adopted.resume()
        deployment = adopted
        assert {r["node"] for r in deployment.figures(window=0.2)} == set(nodes.values())

        # lose the node that holds r1 under steady load: nothing fails, r1 comes back on the other node
        lost = nodes["r1"]
        by_id = {node.node_id: node for node in cluster.list_all_nodes()}
        path = f"/v2/models/{MODEL}/infer"
        with LoadGenerator("127.0.0.1", deployment.port, path, BODY.encode(), 8, token, MODEL) as load:
            time.sleep(1.0)
            cluster.remove_node(by_id[lost], allow_graceful=False)
            r1 = deployment.replicas["r1"]
            wait_for(lambda: r1.spawner.node_id not in (None, lost) and r1.spawner.poll() is None, 180)
            wait_for(lambda: deployment.balancer.states().get("r1") == "UP", 60)
            time.sleep(1.0)
        assert load.result.failed == 0 and load.result.ok > 0, load.result.reasons
        assert r1.spawner.node_id == nodes["r0"]
        assert deployment._supervisor.record("r1")["restarts"] >= 1
    finally:
        deployment.undeploy()
    assert all(s.poll() is not None for s in (served.spawner for served in deployment.replicas.values()))
