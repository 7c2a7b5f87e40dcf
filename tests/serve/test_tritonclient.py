"""Triton's own clients (``tritonclient`` HTTP and gRPC, JSON and binary) against a real ``oar serve``."""

from __future__ import annotations

import queue

import numpy as np
import pytest

from oar.runtime import load_runtime

th = pytest.importorskip("tritonclient.http")
tg = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

TEXTS = ["质量很好，非常满意", "太差了，再也不买了", "还行"]
NUMPY = {"FP32": np.float32, "FP16": np.float16, "INT64": np.int64}


@pytest.fixture(scope="module")
def http(full_server):
    client = th.InferenceServerClient(f"127.0.0.1:{full_server.port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc_client(full_server):
    client = tg.InferenceServerClient(full_server.grpc_address)
    yield client
    client.close()


def _local(hub, name: str, inputs: dict[str, np.ndarray], version: int | None = None) -> dict[str, np.ndarray]:
    return load_runtime(hub.open_package(name, version)).infer(inputs)


def _texts() -> np.ndarray:
    return np.array([t.encode() for t in TEXTS], dtype=object)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_triton_http_client_classifies_text_like_the_local_runtime(http, hub, binary) -> None:
    tensor = th.InferInput("text", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(_texts(), binary_data=binary)
    outputs = [th.InferRequestedOutput(n, binary_data=binary) for n in ("label", "score", "probabilities")]
    result = http.infer("chnsenti-smoke", [tensor], outputs=outputs, request_id="req-7")
    expected = _local(hub, "chnsenti-smoke", {"text": _texts()})
    assert [str(v.decode() if isinstance(v, bytes) else v) for v in result.as_numpy("label")] == [
        v.decode() for v in expected["label"]
    ]
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected["probabilities"], rtol=1e-5)
    assert result.get_response()["id"] == "req-7"


def test_triton_grpc_client_classifies_text_like_the_local_runtime(grpc_client, hub) -> None:
    tensor = tg.InferInput("text", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(_texts())
    result = grpc_client.infer("chnsenti-smoke", [tensor])
    expected = _local(hub, "chnsenti-smoke", {"text": _texts()})
    assert list(result.as_numpy("label")) == list(expected["label"])
    np.testing.assert_allclose(result.as_numpy("score"), expected["score"], rtol=1e-5)


@pytest.mark.parametrize("datatype", ["FP32", "FP16", "INT64"])
@pytest.mark.parametrize("transport", ["http-json", "http-binary", "grpc"])
def test_numeric_datatypes_round_trip_through_both_clients(
    http, grpc_client, hub, numeric_models, datatype, transport
) -> None:
    name = next(n for n, d in numeric_models.items() if d == datatype)
    x = (np.arange(12).reshape(3, 4) - 5).astype(NUMPY[datatype])
    if transport == "grpc":
        tensor = tg.InferInput("x", list(x.shape), datatype)
        tensor.set_data_from_numpy(x)
        result = grpc_client.infer(name, [tensor])
    else:
        binary = transport == "http-binary"
        tensor = th.InferInput("x", list(x.shape), datatype)
        tensor.set_data_from_numpy(x, binary_data=binary)
        result = http.infer(name, [tensor], outputs=[th.InferRequestedOutput("output", binary_data=binary)])
    got = result.as_numpy("output")
    assert got.dtype == np.float32 and got.shape == (3, 3)
    np.testing.assert_allclose(got, _local(hub, name, {"x": x})["output"], rtol=1e-5, atol=1e-6)


def test_grpc_stream_answers_every_request_in_order(grpc_client, hub) -> None:
    answers: queue.Queue = queue.Queue()
    grpc_client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for i, text in enumerate(TEXTS):
            tensor = tg.InferInput("text", [1], "BYTES")
            tensor.set_data_from_numpy(np.array([text.encode()], dtype=object))
            grpc_client.async_stream_infer("chnsenti-smoke", [tensor], request_id=str(i))
        results = [answers.get(timeout=20) for _ in TEXTS]
    finally:
        grpc_client.stop_stream()
    assert all(error is None for _, error in results)
    assert [r.get_response().id for r, _ in results] == ["0", "1", "2"]
    expected = _local(hub, "chnsenti-smoke", {"text": _texts()})["label"]
    assert [r.as_numpy("label")[0] for r, _ in results] == list(expected)


def test_version_policy_all_serves_every_version_and_the_latest_by_default(http, grpc_client, hub) -> None:
    x = np.ones((1, 4), dtype=np.float32)
    meta = http.get_model_metadata("num-fp32")
    assert meta["versions"] == ["1", "2"]
    answers = {}
    for version in ("1", "2", ""):
        tensor = th.InferInput("x", [1, 4], "FP32")
        tensor.set_data_from_numpy(x)
        answers[version] = http.infer("num-fp32", [tensor], model_version=version).as_numpy("output")
    np.testing.assert_allclose(answers["1"], _local(hub, "num-fp32", {"x": x}, 1)["output"], rtol=1e-6)
    np.testing.assert_allclose(answers[""], answers["2"])
    assert not np.allclose(answers["1"], answers["2"])
    assert grpc_client.is_model_ready("num-fp32", "1")
    assert not grpc_client.is_model_ready("num-fp32", "3")


def test_unknown_versions_and_models_are_not_found_on_both_protocols(http, grpc_client) -> None:
    tensor = th.InferInput("x", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="no version '3'"):
        http.infer("num-fp32", [tensor], model_version="3")
    grpc_tensor = tg.InferInput("x", [1, 4], "FP32")
    grpc_tensor.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="NOT_FOUND"):
        grpc_client.infer("no-such-model", [grpc_tensor])


def test_server_and_model_metadata_agree_across_protocols(http, grpc_client) -> None:
    assert http.is_server_live() and http.is_server_ready()
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()
    assert http.get_server_metadata()["name"] == grpc_client.get_server_metadata().name == "oar"
    rest_meta = http.get_model_metadata("chnsenti-smoke")
    grpc_meta = grpc_client.get_model_metadata("chnsenti-smoke")
    assert [o["name"] for o in rest_meta["outputs"]] == [o.name for o in grpc_meta.outputs]
    assert list(grpc_meta.outputs[2].shape) == rest_meta["outputs"][2]["shape"]
