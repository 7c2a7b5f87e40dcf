"""Malformed and hostile requests get a clear 4xx (or gRPC status) with a message, and the server keeps serving."""

from __future__ import annotations

import grpc
import httpx
import numpy as np
import orjson
import pytest

from oar.protocol import grpc_service_pb2 as pb
from oar.protocol import grpc_service_pb2_grpc as pb_grpc
from oar.protocol.raw import to_raw

GOOD = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["质量很好"]}]}


def _text(data, shape=None, datatype="BYTES", name="text"):
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}]}


HOSTILE_BODIES = {
    "not json": (b"{not json", 400, "not valid JSON"),
    "json but a list": (b"[1, 2]", 400, "JSON object"),
    "no inputs": (b"{}", 400, "non-empty 'inputs'"),
    "empty body": (b"", 400, "empty"),
    "shape disagrees with data": (orjson.dumps(_text(["a", "b"], shape=[3])), 400, "needs 3"),
    "negative shape": (orjson.dumps(_text(["a"], shape=[-1])), 400, "non-negative"),
    "unknown datatype": (orjson.dumps(_text(["a"], datatype="STRING")), 400, "unknown datatype"),
    "numbers as BYTES": (orjson.dumps(_text([1, 2])), 400, "must be a string"),
    "ragged data": (orjson.dumps(_text([["a"], "b"], shape=[2])), 400, "ragged"),
    "wrong input name": (orjson.dumps(_text(["a"], name="sentence")), 400, "takes inputs text"),
    "two-dimensional text": (orjson.dumps(_text(["a", "b"], shape=[1, 2])), 400, "shape [n]"),
    "empty text": (orjson.dumps(_text(["   "])), 400, "empty"),
    "FP32 text": (orjson.dumps(_text([1.0], datatype="FP32")), 400, "must be BYTES"),
    "unknown output": (orjson.dumps({**GOOD, "outputs": [{"name": "nope"}]}), 400, "no output nope"),
    "bad priority": (orjson.dumps({**GOOD, "parameters": {"priority": "high"}}), 400, "priority"),
    "batch over the limit": (orjson.dumps(_text(["好"] * 17)), 400, "at most 16"),
}


def _assert_healthy(base: str) -> None:
    assert httpx.get(f"{base}/v2/health/ready").status_code == 200
    ok = httpx.post(f"{base}/v2/models/chnsenti-smoke/infer", content=orjson.dumps(GOOD))
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_hostile_json_bodies_get_a_4xx_with_a_message(full_server, case) -> None:
    body, status, message = HOSTILE_BODIES[case]
    response = httpx.post(f"{full_server.endpoint}/v2/models/chnsenti-smoke/infer", content=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert any(m in error for m in message.split("|")), error
    assert "Traceback" not in response.text


def test_the_server_is_healthy_after_every_hostile_body(full_server) -> None:
    for body, _, _ in HOSTILE_BODIES.values():
        httpx.post(f"{full_server.endpoint}/v2/models/chnsenti-smoke/infer", content=body)
    _assert_healthy(full_server.endpoint)


@pytest.mark.parametrize(
    ("declared_size", "payload", "header_extra", "message"),
    [
        (8, b"\x00" * 4, 0, "runs past"),
        (4, b"\x00" * 8, 0, "add up to 4"),
        (4, b"\x00" * 4, 10_000, "Inference-Header-Content-Length"),
    ],
    ids=["declared more than sent", "sent more than declared", "header length past the body"],
)
def test_mismatched_binary_sizes_are_rejected(full_server, declared_size, payload, header_extra, message) -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 1], "parameters": {"binary_data_size": declared_size}}
            ]
        }
    )
    response = httpx.post(
        f"{full_server.endpoint}/v2/models/num-fp32/infer",
        content=header + payload,
        headers={"Inference-Header-Content-Length": str(len(header) + header_extra)},
    )
    assert response.status_code == 400 and message in response.json()["error"], response.text
    _assert_healthy(full_server.endpoint)


def test_bytes_element_lengths_past_the_end_are_rejected(full_server) -> None:
    blob = b"\xff\xff\x00\x00abc"  # claims 65535 bytes
    header = orjson.dumps(
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(blob)}}]}
    )
    response = httpx.post(
        f"{full_server.endpoint}/v2/models/chnsenti-smoke/infer",
        content=header + blob,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400 and "past the end" in response.json()["error"]


def test_a_huge_body_is_refused_with_413_before_it_is_read(full_server) -> None:
    huge = b"x" * (2 << 20)  # twice the server's 1 MiB limit
    response = httpx.post(f"{full_server.endpoint}/v2/models/chnsenti-smoke/infer", content=huge)
    assert response.status_code == 413 and "limit" in response.json()["error"]
    _assert_healthy(full_server.endpoint)


def test_a_huge_chunked_body_is_cut_off_with_413(full_server) -> None:
    def chunks():
        for _ in range(64):
            yield b"y" * 65536

    response = httpx.post(f"{full_server.endpoint}/v2/models/chnsenti-smoke/infer", content=chunks())
    assert response.status_code == 413
    _assert_healthy(full_server.endpoint)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v2/models/no-such-model/infer", 404),
        ("POST", "/v2/models/chnsenti-smoke/versions/99/infer", 404),
        ("POST", "/v2/models/chnsenti-smoke/versions/abc/infer", 404),
        ("GET", "/v2/models/no-such-model", 404),
        ("GET", "/v2/models/chnsenti-smoke/infer", 405),
        ("DELETE", "/v2/models/chnsenti-smoke", 405),
        ("GET", "/v3/anything", 404),
        ("GET", "/v2/models/chnsenti-smoke/versions/", 404),
    ],
)
def test_unknown_models_versions_and_routes_are_4xx(full_server, method, path, status) -> None:
    response = httpx.request(method, f"{full_server.endpoint}{path}", content=orjson.dumps(GOOD))
    assert response.status_code == status, response.text
    assert response.json()["error"]


@pytest.fixture(scope="module")
def stub(full_server):
    channel = grpc.insecure_channel(full_server.grpc_address)
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def _grpc_request(model: str = "num-fp32", datatype: str = "FP32", shape=(1, 4), raw: list[bytes] | None = None):
    message = pb.ModelInferRequest(model_name=model)
    message.inputs.add(name="x", datatype=datatype, shape=list(shape))
    if raw is None:
        raw = [to_raw(np.ones(shape, dtype=np.float32), "FP32")]
    message.raw_input_contents.extend(raw)
    return message


@pytest.mark.parametrize(
    ("message", "code", "text"),
    [
        (_grpc_request(raw=[b"\x00" * 15]), grpc.StatusCode.INVALID_ARGUMENT, "needs 16"),
        (_grpc_request(raw=[b"\x00" * 16, b"\x00"]), grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents"),
        (_grpc_request(datatype="FP64", raw=[b"\x00" * 32]), grpc.StatusCode.INVALID_ARGUMENT, "must be FP32"),
        (_grpc_request(shape=(1, 5), raw=[b"\x00" * 20]), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        (_grpc_request(model="nope"), grpc.StatusCode.NOT_FOUND, "not served"),
        (pb.ModelInferRequest(model_name="num-fp32"), grpc.StatusCode.INVALID_ARGUMENT, "at least one input"),
    ],
    ids=["short raw", "extra raw", "wrong datatype", "wrong shape", "unknown model", "no inputs"],
)
def test_hostile_grpc_requests_get_a_status_and_a_message(stub, message, code, text) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        stub.ModelInfer(message, timeout=10)
    assert failure.value.code() == code
    assert text in failure.value.details()


def test_fp16_in_typed_contents_is_refused_with_a_hint(stub) -> None:
    message = pb.ModelInferRequest(model_name="num-fp16")
    message.inputs.add(name="x", datatype="FP16", shape=[1, 4])
    with pytest.raises(grpc.RpcError) as failure:
        stub.ModelInfer(message, timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_input_contents" in failure.value.details()


def test_a_grpc_message_over_the_limit_is_refused_and_the_server_stays_up(stub, full_server) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        stub.ModelInfer(_grpc_request(shape=(1, 4), raw=[b"\x00" * (2 << 20)]), timeout=10)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    _assert_healthy(full_server.endpoint)
