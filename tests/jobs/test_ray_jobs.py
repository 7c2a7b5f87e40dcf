"""The Ray executor on a real local Ray cluster: a head and three 1-CPU nodes, two spot and one on-demand.

Nodes carry ``{"pool:spot": 1}`` / ``{"pool:on-demand": 1}``; removing a node from the cluster is a real
node loss (its raylet and every actor on it die).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from jobs_helpers import STEPS, drive, write_job

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

import oar.jobs  # noqa: E402, F401
from oar.hub import Hub  # noqa: E402
from oar.jobs.executors.ray import RayExecutor, RayInventory  # noqa: E402
from oar.jobs.pools import Pool, Pools  # noqa: E402
from oar.jobs.preemption import ManualPreemptions  # noqa: E402
from oar.jobs.progress import read_progress  # noqa: E402
from oar.jobs.scheduler import Scheduler, SchedulerConfig, job_dir  # noqa: E402
from oar.jobs.service import submit  # noqa: E402
from oar.jobs.store import JobStore  # noqa: E402

POOLS = Pools(
    pools={
        "on-demand": Pool(price_per_hour=0.10, min_nodes=1, max_nodes=1),
        "spot": Pool(price_per_hour=0.10, spot=True, spot_discount=0.7, notice_s=60, min_nodes=2, max_nodes=2),
    }
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, ray_retried):
    home = tmp_path_factory.mktemp("ray-home")
    os.environ["OAR_HOME"] = str(home)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = ray_retried(
        lambda: Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    )
    for pool in ("spot", "spot", "on-demand"):
        ray_retried(lambda pool=pool: cluster.add_node(num_cpus=1, resources={f"pool:{pool}": 1}))
    cluster.wait_for_nodes()
    executor = RayExecutor(cluster.address)
    yield cluster, executor, home
    ray.shutdown()
    cluster.shutdown()
    os.environ.pop("OAR_HOME", None)


def _scheduler(cluster, executor, hub, source):
    by_id = {node.node_id: node for node in cluster.list_all_nodes()}

    def remove(node_id: str) -> None:
        cluster.remove_node(by_id[node_id], allow_graceful=False)

    config = SchedulerConfig(autoscale=False)
    return Scheduler(hub, POOLS, executor, RayInventory(remove), source, cluster.address, config, spans_nodes=True)


@pytest.fixture(scope="module")
def reference(cluster) -> bytes:
    from oar.pipelines.train_job import execute, start_run
    from oar.train.job import load_job

    home = cluster[2] / "reference"
    hub = Hub(home)
    previous, os.environ["OAR_HOME"] = os.environ["OAR_HOME"], str(home)
    try:
        run = execute(start_run(load_job(write_job(cluster[2])), hub).id, hub, progress=False)
    finally:
        os.environ["OAR_HOME"] = previous
    return Path(run.metrics["weights"]).read_bytes()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_two_worker_job_trains_with_ddp_over_actors_on_both_spot_nodes(cluster):
    ray_cluster, executor, home = cluster
    hub = Hub(home)
    job = submit(
        write_job(home, "ddp.yaml", pool="spot", workers=2), hub, POOLS, cluster=ray_cluster.address, spans_nodes=True
    )
    store = JobStore.open(hub)
    drive(_scheduler(ray_cluster, executor, hub, ManualPreemptions()), lambda: store.get(job.id).done, 800)
    job = store.get(job.id)
    assert job.state == "succeeded", job.reason
    (attempt,) = store.attempts(job.id)
    spot = {n.id for n in RayInventory().nodes() if n.pool == "spot"}
    assert attempt.workers == 2 and set(attempt.nodes) == spot and len(spot) == 2
    metrics = hub.runs.get(job.run_id).metrics
    assert metrics["world_size"] == 2 and metrics["steps"] == STEPS
    assert attempt.price_per_hour == pytest.approx(2 * 0.10 * 0.3)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_spot_job_survives_a_notice_and_a_real_node_loss_and_ends_bit_identical(cluster, reference):
    ray_cluster, executor, home = cluster
    hub = Hub(home)
    job = submit(
        write_job(home, pool="spot", max_preemptions=2), hub, POOLS, cluster=ray_cluster.address, spans_nodes=True
    )
    source = ManualPreemptions()
    scheduler = _scheduler(ray_cluster, executor, hub, source)
    store = JobStore.open(hub)
    plan = [(8, 45.0), (18, 0.0)]  # a notice (then its node goes), then a node lost with no notice

    def preempt() -> None:
        running = [a for a in store.attempts(job.id, states=("running",)) if not a.handle.get("stop")]
        if not plan or not running:
            return
        step = read_progress(job_dir(hub, job.id) / f"attempt-{running[0].number}" / "progress.json").get("step", 0)
        if step >= plan[0][0]:
            source.preempt(running[0].nodes[0], plan.pop(0)[1], "test preemption")

    drive(scheduler, lambda: store.get(job.id).done, 800, preempt)
    job = store.get(job.id)
    assert job.state == "succeeded", job.reason
    attempts = store.attempts(job.id)
    assert [a.outcome for a in attempts] == ["preempted", "killed", "succeeded"]
    assert [a.pool for a in attempts] == ["spot", "spot", "on-demand"]
    assert len({a.nodes[0] for a in attempts}) == 3  # three different nodes, two of them gone now
    assert _alive_nodes_after(scheduler, 90.0, 2) == 2  # the head and the on-demand node, once both losses are done
    assert Path(hub.runs.get(job.run_id).metrics["weights"]).read_bytes() == reference
    assert hub.runs.get(job.run_id).metrics["steps"] == STEPS


def _alive_nodes_after(scheduler, seconds: float, expected: int) -> int:  # type: ignore[no-untyped-def]
    """The noticed node goes when its notice window ends (the scheduler's ticks remove it), and Ray marks a
    removed node dead only after its health checks time out: keep ticking and wait, up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        alive = len([n for n in ray.nodes() if n["Alive"]])
        if alive == expected or time.monotonic() > deadline:
            return alive
        scheduler.tick()
        time.sleep(1.0)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_notice_forwarder_on_each_spot_node_relays_its_cloud_notice(cluster, ray_retried):
    """One actor per spot node polls the node's metadata endpoint (a real HTTP server on loopback)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from oar.jobs.ray_notices import NAMESPACE, RayCloudNotices

    answer = {"text": "FALSE"}

    class Metadata(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = answer["text"].encode() if self.headers.get("Metadata-Flavor") == "Google" else b""
            self.send_response(200 if body else 403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ray_cluster = cluster[0]
    if not any(n.pool == "spot" for n in RayInventory().nodes()):  # an earlier test may have lost them all
        ray_retried(lambda: ray_cluster.add_node(num_cpus=1, resources={"pool:spot": 1}))
        ray_cluster.wait_for_nodes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = RayCloudNotices("gcp", POOLS, f"http://127.0.0.1:{server.server_address[1]}", every_s=0.2)
    try:
        spot = sorted(n.id for n in RayInventory().nodes() if n.pool == "spot")
        assert spot and source.poll(RayInventory().nodes()) == []
        for node in spot:  # started, pinned to its node, found by name
            assert ray.get_actor(f"oar-notices-{node}", namespace=NAMESPACE) is not None
        answer["text"] = "TRUE"
        notices, deadline = [], time.monotonic() + 120
        while len(notices) < len(spot):
            assert time.monotonic() < deadline, f"notices heard: {notices}"
            notices += source.poll(RayInventory().nodes())
            time.sleep(0.2)
        assert sorted(n.node_id for n in notices) == spot
        assert all(20.0 < n.notice_s <= 30.0 and n.reason == "gcp spot interruption notice" for n in notices)
        time.sleep(1.0)
        assert source.poll(RayInventory().nodes()) == []  # one notice per node
    finally:
        server.shutdown()
        server.server_close()
        for node in source.forwarders:
            ray.kill(ray.get_actor(f"oar-notices-{node}", namespace=NAMESPACE))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_spot_node_lost_while_ray_still_lists_it_is_a_preemption_not_a_crash(cluster, reference, ray_retried):
    """retries: 0. The node the job ran on goes (no notice); Ray lists it as alive a while longer, which
    must neither draw the next attempt onto it nor turn a start there into a failure of the job."""
    from oar.jobs.executors.base import Launch, NodeUnavailable

    ray_cluster, executor, home = cluster
    hub = Hub(home)
    before = {n.id for n in RayInventory().nodes()}
    big = ray_retried(lambda: ray_cluster.add_node(num_cpus=2, resources={"pool:spot": 1}))  # preferred: most room
    ray_retried(lambda: ray_cluster.add_node(num_cpus=1, resources={"pool:spot": 1}))
    ray_cluster.wait_for_nodes()
    big_id = big.node_id
    assert big_id not in before
    job = submit(
        write_job(home, "lost.yaml", pool="spot", retries=0), hub, POOLS, cluster=ray_cluster.address, spans_nodes=True
    )
    source = ManualPreemptions()
    scheduler = _scheduler(ray_cluster, executor, hub, source)
    store = JobStore.open(hub)

    def lose_node() -> None:
        running = [a for a in store.attempts(job.id, states=("running",)) if not a.handle.get("stop")]
        if running and running[0].number == 1:
            progress = job_dir(hub, job.id) / "attempt-1" / "progress.json"
            if read_progress(progress).get("step", 0) >= 6:
                source.preempt(running[0].nodes[0], 0.0, "test node loss")

    drive(scheduler, lambda: store.get(job.id).done, 800, lose_node)
    job = store.get(job.id)
    assert job.state == "succeeded", job.reason
    attempts = store.attempts(job.id)
    assert attempts[0].nodes == (big_id,) and attempts[0].outcome == "killed"
    assert attempts[-1].outcome == "succeeded" and big_id not in attempts[-1].nodes
    assert all(a.outcome == "unplaced" and a.seconds() == 0 for a in attempts[1:-1])
    assert Path(hub.runs.get(job.run_id).metrics["weights"]).read_bytes() == reference
    # a start on the removed node, listed alive or not, is a lost placement the scheduler requeues
    launch = Launch("probe-1", job.run_id, 1, 1, "spot", (big_id,), home / "probe", home / "probe.log", {})
    with pytest.raises(NodeUnavailable):
        executor.start(launch)
