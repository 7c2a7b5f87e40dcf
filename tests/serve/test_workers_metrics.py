"""``oar serve --workers 2``: ``/metrics`` on any worker reports the whole server (prometheus multiprocess mode).

A real supervisor and two worker processes on loopback ports; a bounded number of requests, each on a fresh
connection so that the kernel (SO_REUSEPORT) spreads them over both workers.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from oar.serve.metrics import ServerMetrics
from oar.serve.process import ServerProcess

from .conftest import metric_samples, wait_for_listeners

REQUESTS = 40
SCRAPES = 8
MODEL = {"model": "num-fp32", "version": "1"}
X = np.arange(8, dtype=np.float32).reshape(2, 4)
BODY = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": X.ravel().tolist()}]})


def test_one_process_keeps_its_own_registry() -> None:
    first, second = ServerMetrics(), ServerMetrics()
    first.for_model("a", 1).success.inc()
    assert 'model="a"' in first.exposition().decode()
    assert 'model="a"' not in second.exposition().decode()


def test_multiprocess_metrics_refuse_a_process_that_imported_prometheus_without_the_directory(tmp_path) -> None:
    from oar._core.errors import OarError

    with pytest.raises(OarError, match="PROMETHEUS_MULTIPROC_DIR"):
        ServerMetrics(multiprocess_dir=tmp_path)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux (SO_REUSEPORT, /proc/net/tcp)")
def test_metrics_of_two_workers_add_up_whichever_worker_answers(numeric_models, tmp_path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    server = ServerProcess(["num-fp32:1"], extra_args=["--workers", "2"], env={"TMPDIR": str(temp)})
    server.start(timeout=120)
    try:
        wait_for_listeners(server.port, 2)
        metrics_dirs = list(temp.glob("oar-metrics-*"))
        assert len(metrics_dirs) == 1 and metrics_dirs[0].stat().st_mode & 0o077 == 0  # private to the user

        url = f"{server.endpoint}/v2/models/num-fp32/versions/1/infer"
        for _ in range(REQUESTS):  # httpx.post: a new connection each time
            assert httpx.post(url, content=BODY, timeout=10).status_code == 200

        served = set()
        for _ in range(SCRAPES):  # each scrape on a fresh connection, so both workers answer some
            text = httpx.get(f"{server.endpoint}/metrics", timeout=10).text
            successes = metric_samples(text, "oar_inference_requests_total", outcome="success", **MODEL)
            assert successes == [REQUESTS], successes  # one merged series, not one per worker
            assert metric_samples(text, "oar_request_duration_seconds_count", **MODEL) == [REQUESTS]
            assert metric_samples(text, "oar_inflight_requests", **MODEL) == [0]
            assert metric_samples(text, "oar_queue_depth", **MODEL) == [0]
            assert sum(metric_samples(text, "oar_batch_size_sum", **MODEL)) == 2 * REQUESTS  # two items a request
            stats = httpx.get(f"{server.endpoint}/v2/models/num-fp32/versions/1/stats", timeout=10).json()
            served.add(stats["success_count"])  # per worker, by design
        # Both workers served a share (2^-39 odds otherwise), so the totals above really were merged.
        assert all(count < REQUESTS for count in served), served

        pids = {path.stem.rsplit("_", 1)[1] for path in metrics_dirs[0].glob("counter_*.db")}
        assert len(pids) == 2, pids

        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
    finally:
        server.stop()
    assert not list(temp.glob("oar-metrics-*"))  # the supervisor removed the directory
