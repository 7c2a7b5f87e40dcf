"""Operations: metrics, statistics, repository control, zero-failure reload, auth, load shedding, timeouts, drain."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest

from oar.protocol import grpc_service_pb2 as pb
from oar.protocol import grpc_service_pb2_grpc as pb_grpc
from oar.protocol.raw import to_raw
from oar.runtime import load_runtime
from oar.serve.process import ServerProcess

from .conftest import (
    ADMIN_TOKEN,
    INFERENCE_TOKEN,
    QUEUE_DELAY_S,
    metric_samples,
    register_numeric,
    wait_for_listeners,
)

X = np.arange(8, dtype=np.float32).reshape(2, 4)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _numeric_body(parameters: dict | None = None) -> bytes:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": X.ravel().tolist()}]}
    if parameters:
        body["parameters"] = parameters
    return orjson.dumps(body)


def _grpc_numeric(model: str = "num-fp32", parameters: dict | None = None) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name=model)
    message.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    message.raw_input_contents.append(to_raw(X, "FP32"))
    for key, value in (parameters or {}).items():
        message.parameters[key].int64_param = value
    return message


# --- metrics and statistics -----------------------------------------------------------------------------
def test_metrics_count_requests_and_batches_per_model(full_server) -> None:
    for _ in range(3):
        assert (
            httpx.post(
                f"{full_server.endpoint}/v2/models/num-fp32/versions/1/infer", content=_numeric_body()
            ).status_code
            == 200
        )
    httpx.post(f"{full_server.endpoint}/v2/models/num-fp32/versions/1/infer", content=b'{"inputs": [{}]}')
    text = httpx.get(f"{full_server.endpoint}/metrics").text
    assert 'oar_inference_requests_total{model="num-fp32",outcome="success",version="1"}' in text
    for family in (
        "oar_request_duration_seconds_bucket",
        "oar_queue_duration_seconds_bucket",
        "oar_compute_duration_seconds_bucket",
        "oar_batch_size_bucket",
        "oar_queue_depth",
        "oar_inflight_requests",
    ):
        assert family in text
    stats = httpx.get(f"{full_server.endpoint}/v2/models/num-fp32/versions/1/stats").json()
    assert stats["success_count"] >= 3 and stats["item_count"] >= 6 and stats["queue_depth"] == 0


# --- repository extension ---------------------------------------------------------------------------------
def test_repository_control_needs_the_admin_token(full_server) -> None:
    url = f"{full_server.endpoint}/v2/repository/index"
    assert httpx.post(url).status_code == 401
    assert httpx.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    index = httpx.post(url, headers=ADMIN).json()
    assert {"name": "chnsenti-smoke", "version": "1", "state": "READY"} in index


def test_reload_under_traffic_fails_no_request_and_a_broken_version_keeps_the_old_one(
    full_server, hub, tmp_path
) -> None:
    base = full_server.endpoint
    register_numeric(hub, tmp_path, "reloadable", seed=11)
    load = f"{base}/v2/repository/models/reloadable/load"
    latest = orjson.dumps({"parameters": {"version_policy": "latest:1"}})
    assert httpx.post(load, headers=ADMIN, content=latest).status_code == 200

    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=base, timeout=10) as client:
            while not stop.is_set():
                response = client.post("/v2/models/reloadable/infer", content=_numeric_body())
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.append(response.json()["model_version"])

    threads = [_Background(traffic) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        register_numeric(hub, tmp_path, "reloadable", seed=12)
        assert httpx.post(load, headers=ADMIN, content=latest, timeout=30).status_code == 200
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    errors = [repr(thread.error) for thread in threads if thread.error is not None]
    assert not errors, errors  # a request that raised (reset, timeout) is a failure too, not a quiet thread
    assert len(statuses) > 20
    assert set(statuses) == {200}, f"{len(statuses) - statuses.count(200)} of {len(statuses)} failed"
    assert versions[0] == "1" and versions[-1] == "2"

    register_numeric(hub, tmp_path, "reloadable", seed=13)
    model_file = hub.models.get("reloadable", 3).path / "model.onnx"
    os.chmod(model_file, stat.S_IRUSR | stat.S_IWUSR)
    with open(model_file, "ab") as handle:
        handle.write(b"tampered")
    failed = httpx.post(load, headers=ADMIN, content=latest, timeout=30)
    assert failed.status_code == 400 and "keeps serving" in failed.json()["error"]
    answer = httpx.post(f"{base}/v2/models/reloadable/infer", content=_numeric_body()).json()
    assert answer["model_version"] == "2"
    expected = load_runtime(hub.open_package("reloadable", 2)).infer({"x": X})["output"]
    np.testing.assert_allclose(np.array(answer["outputs"][0]["data"]).reshape(2, 3), expected, rtol=1e-5)
    index = httpx.post(f"{base}/v2/repository/index", headers=ADMIN).json()
    assert any(e["name"] == "reloadable" and e["version"] == "3" and "digest" in e.get("reason", "") for e in index)

    unload = f"{base}/v2/repository/models/reloadable/unload"
    assert httpx.post(unload, headers=ADMIN).status_code == 200
    assert httpx.post(f"{base}/v2/models/reloadable/infer", content=_numeric_body()).status_code == 404
    assert httpx.post(unload, headers=ADMIN).status_code == 404


def test_repository_control_over_grpc(full_server, hub, tmp_path) -> None:
    register_numeric(hub, tmp_path, "grpc-loaded", seed=21)
    with grpc.insecure_channel(full_server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.RepositoryIndex(pb.RepositoryIndexRequest())
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="grpc-loaded"), metadata=metadata)
        assert stub.ModelReady(pb.ModelReadyRequest(name="grpc-loaded")).ready
        ready = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), metadata=metadata)
        assert "grpc-loaded" in {m.name for m in ready.models}
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="grpc-loaded"), metadata=metadata)
        assert not stub.ModelReady(pb.ModelReadyRequest(name="grpc-loaded")).ready


# --- a constrained server: token, queue of one, slow batches --------------------------------------------
def _auth(token: str = INFERENCE_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_inference_needs_the_bearer_token_but_health_and_metrics_do_not(constrained) -> None:
    url = f"{constrained.endpoint}/v2/models/num-fp32/infer"
    missing = httpx.post(url, content=_numeric_body())
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert httpx.post(url, content=_numeric_body(), headers=_auth("wrong")).status_code == 401
    assert httpx.get(f"{constrained.endpoint}/v2/models/num-fp32").status_code == 401
    assert httpx.post(url, content=_numeric_body(), headers=_auth(), timeout=10).status_code == 200
    assert httpx.get(f"{constrained.endpoint}/v2/health/ready").status_code == 200
    assert httpx.get(f"{constrained.endpoint}/metrics").status_code == 200
    control = httpx.post(f"{constrained.endpoint}/v2/repository/index", headers=_auth())
    assert control.status_code == 403 and "--admin-token" in control.json()["error"]


def test_grpc_inference_needs_the_bearer_token(constrained) -> None:
    with grpc.insecure_channel(constrained.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.ModelInfer(_grpc_numeric(), timeout=10)
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answer = stub.ModelInfer(
            _grpc_numeric(), metadata=(("authorization", f"Bearer {INFERENCE_TOKEN}"),), timeout=10
        )
        assert list(answer.outputs[0].shape) == [2, 3]


class _Background(threading.Thread):
    """Runs ``call`` and keeps its result or its exception: ``result()`` re-raises it in the test."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._call = call
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self._call()
        except BaseException as exc:
            self.error = exc

    def result(self) -> Any:
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


def _in_background(call: Callable[[], Any]) -> _Background:
    thread = _Background(call)
    thread.start()
    time.sleep(QUEUE_DELAY_S / 4)  # the first request is now waiting in the queue
    return thread


def test_a_full_queue_sheds_with_503_and_retry_after(constrained) -> None:
    url = f"{constrained.endpoint}/v2/models/num-fp32/infer"
    first = _in_background(lambda: httpx.post(url, content=_numeric_body(), headers=_auth(), timeout=10))
    shed = httpx.post(url, content=_numeric_body(), headers=_auth(), timeout=10)
    assert first.result().status_code == 200
    assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
    assert "queued" in shed.json()["error"]


def test_a_full_queue_sheds_grpc_with_resource_exhausted(constrained) -> None:
    metadata = (("authorization", f"Bearer {INFERENCE_TOKEN}"),)
    with grpc.insecure_channel(constrained.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        first = _in_background(lambda: stub.ModelInfer(_grpc_numeric(), metadata=metadata, timeout=10))
        with pytest.raises(grpc.RpcError) as failure:
            stub.ModelInfer(_grpc_numeric(), metadata=metadata, timeout=10)
        answered = first.result()
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert list(answered.outputs[0].shape) == [2, 3]


def test_a_request_past_its_timeout_is_dropped_before_it_runs(constrained) -> None:
    url = f"{constrained.endpoint}/v2/models/num-fp32/infer"
    late = httpx.post(url, content=_numeric_body({"timeout": 1000}), headers=_auth(), timeout=10)
    assert late.status_code == 503 and "timeout" in late.json()["error"]
    metadata = (("authorization", f"Bearer {INFERENCE_TOKEN}"),)
    with grpc.insecure_channel(constrained.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.ModelInfer(_grpc_numeric(parameters={"timeout": 1000}), metadata=metadata, timeout=10)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


# --- graceful drain ----------------------------------------------------------------------------------------
def test_sigterm_drains_in_flight_requests_before_exiting(numeric_models) -> None:
    args = ["--max-queue-delay-us", str(int(QUEUE_DELAY_S * 1e6))]
    with ServerProcess(["num-fp32:1"], extra_args=args) as server:
        url = f"{server.endpoint}/v2/models/num-fp32/infer"
        answer = _in_background(lambda: httpx.post(url, content=_numeric_body(), timeout=10))
        assert server.process is not None
        _wait_until_in_flight(server)  # else SIGTERM can close the listener before the request connects
        server.process.send_signal(signal.SIGTERM)
        drained = answer.result()
        server.process.wait(15)
        assert drained.status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.endpoint}/v2/health/live", timeout=2)


def _wait_until_in_flight(server: ServerProcess, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(f"{server.endpoint}/metrics", timeout=5).text
        if sum(metric_samples(text, "oar_inflight_requests")) > 0:
            return
        time.sleep(0.01)
    raise AssertionError("the request never reached the server")


# --- worker processes -------------------------------------------------------------------------------------
def test_two_worker_processes_share_both_ports_and_stop_together(numeric_models) -> None:
    server = ServerProcess(["num-fp32:1"], extra_args=["--workers", "2"]).start(timeout=120)
    try:
        wait_for_listeners(server.port, 2)
        for _ in range(40):  # a fresh connection each: the kernel spreads them over both workers
            response = httpx.post(f"{server.endpoint}/v2/models/num-fp32/infer", content=_numeric_body())
            assert response.status_code == 200
        served = {httpx.get(f"{server.endpoint}/v2/models/num-fp32/stats").json()["success_count"] for _ in range(30)}
        with grpc.insecure_channel(server.grpc_address) as channel:
            answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_grpc_numeric(), timeout=10)
        assert list(answer.outputs[0].shape) == [2, 3]
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
    finally:
        server.stop()
    assert max(served) < 40 and (sum(served) == 40 or served == {20}), served  # each worker answered its share
