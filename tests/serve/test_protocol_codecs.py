"""The wire codecs, without a server: every datatype survives JSON, raw bytes and protobuf; bad sizes are 400s."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from oar._core.errors import InvalidInputError
from oar.protocol import decode_infer_request, encode_infer_response
from oar.protocol import grpc_service_pb2 as pb
from oar.protocol.datatypes import DATATYPES
from oar.protocol.grpc_codec import decode_model_infer_request, serialize_model_infer_response
from oar.protocol.grpc_service_pb2 import ModelInferRequest
from oar.protocol.raw import from_raw, to_raw

SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([[0, 7, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 7, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 7, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 7, 2**64 - 1]], dtype=np.uint64),
    "INT8": np.array([[-128, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-32768, 0, 32767]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64),
    "FP16": np.array([[-1.5, 0.0, 65504.0]], dtype=np.float16),
    "BF16": np.array([[-1.5, 0.0, 2.0**100]], dtype=np.float32),  # values exact in bfloat16
    "FP32": np.array([[-1.5, 0.0, 3.25e-3]], dtype=np.float32),
    "FP64": np.array([[-1.5, 0.0, 1e300]], dtype=np.float64),
    "BYTES": np.array([[b"a", b"", "中文".encode()]], dtype=object),
}


def test_every_protocol_datatype_has_a_sample() -> None:
    assert set(SAMPLES) == set(DATATYPES)


@pytest.mark.parametrize("datatype", sorted(SAMPLES))
def test_raw_bytes_round_trip_every_datatype(datatype: str) -> None:
    array = SAMPLES[datatype]
    back = from_raw(to_raw(array, datatype), datatype, list(array.shape), "x")
    assert back.shape == array.shape
    if datatype == "BF16":
        np.testing.assert_array_equal(back, array.astype(np.float32))
    else:
        np.testing.assert_array_equal(back, array)


def test_bf16_travels_as_two_bytes_per_element_keeping_the_upper_half_of_float32() -> None:
    raw = to_raw(np.array([1.0, -2.0], dtype=np.float32), "BF16")
    assert raw == bytes.fromhex("803f00c0")


@pytest.mark.parametrize("datatype", sorted(SAMPLES))
def test_json_and_binary_rest_requests_decode_to_the_same_tensor(datatype: str) -> None:
    array = SAMPLES[datatype]
    raw = to_raw(array, datatype)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": datatype,
                    "shape": list(array.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    binary = decode_infer_request(header + raw, header_length=len(header)).inputs["x"]
    if datatype == "BYTES":
        data = [v.decode() for v in array.ravel()]
    elif datatype in ("BOOL",):
        data = array.ravel().tolist()
    else:
        data = array.astype(np.float64 if array.dtype.kind == "f" else array.dtype).ravel().tolist()
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": datatype, "shape": list(array.shape), "data": data}]})
    as_json = decode_infer_request(body).inputs["x"]
    np.testing.assert_array_equal(binary, as_json)


@pytest.mark.parametrize("datatype", sorted(SAMPLES))
def test_grpc_raw_contents_round_trip_every_datatype(datatype: str) -> None:
    array = SAMPLES[datatype]
    message = ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype=datatype, shape=list(array.shape))
    message.raw_input_contents.append(to_raw(array, datatype))
    decoded = decode_model_infer_request(ModelInferRequest.FromString(message.SerializeToString()))
    response = pb.ModelInferResponse.FromString(
        serialize_model_infer_response("m", "1", decoded.inputs, {"x": datatype})
    )
    back = from_raw(response.raw_output_contents[0], datatype, list(response.outputs[0].shape), "x")
    np.testing.assert_array_equal(back, array.astype(np.float32) if datatype == "BF16" else array)


def test_grpc_typed_contents_are_read_when_no_raw_contents_are_sent() -> None:
    message = ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="x", datatype="INT16", shape=[2, 2])
    tensor.contents.int_contents.extend([1, -2, 3, -4])
    decoded = decode_model_infer_request(message).inputs["x"]
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, [[1, -2], [3, -4]])


def test_binary_outputs_are_sent_only_when_asked_for() -> None:
    header = orjson.dumps(
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}],
            "outputs": [{"name": "a", "parameters": {"binary_data": True}}, {"name": "b"}],
        }
    )
    request = decode_infer_request(header)
    outputs = {"a": np.array([1.0, 2.0], dtype=np.float32), "b": np.array([3.0], dtype=np.float32)}
    body, length = encode_infer_response("m", "1", outputs, {"a": "FP32", "b": "FP32"}, request)
    assert length is not None
    head = orjson.loads(body[:length])
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert head["outputs"][1]["data"] == [3.0]
    np.testing.assert_array_equal(np.frombuffer(body[length:], dtype="<f4"), [1.0, 2.0])


@pytest.mark.parametrize(
    ("raw", "shape", "datatype", "message"),
    [
        (b"\x00" * 7, [2], "FP32", "needs 8"),
        (b"\x00" * 9, [2], "FP32", "needs 8"),
        (b"\x05\x00\x00\x00ab", [1], "BYTES", "past the end"),
        (b"\x01\x00", [1], "BYTES", "4-byte length"),
        (b"\x01\x00\x00\x00a\x01\x00\x00\x00b", [1], "BYTES", "needs 1"),
        (b"", [1], "BYTES", "needs 1"),
        (b"\x00" * 4, [1], "COMPLEX64", "unknown datatype"),
    ],
)
def test_raw_buffers_that_disagree_with_their_shape_are_rejected(raw, shape, datatype, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        from_raw(raw, datatype, shape, "x")


def test_binary_sizes_that_do_not_add_up_to_the_body_are_rejected() -> None:
    header = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]}
    )
    with pytest.raises(InvalidInputError, match="add up to 4"):
        decode_infer_request(header + b"\x00" * 8, header_length=len(header))
    with pytest.raises(InvalidInputError, match="runs past"):
        decode_infer_request(header + b"\x00" * 2, header_length=len(header))
    with pytest.raises(InvalidInputError, match="Inference-Header-Content-Length"):
        decode_infer_request(header, header_length=len(header) + 10)


@pytest.mark.parametrize(
    ("outputs", "datatypes", "request_id", "version"),
    [
        (
            {"label": np.array([b"negative", "正面".encode()], dtype=object), "p": np.ones((2, 2), np.float32)},
            {"label": "BYTES", "p": "FP32"},
            None,
            "1",
        ),
        ({"big": np.arange(70_000, dtype=np.int64).reshape(350, 200)}, {"big": "INT64"}, "req-42", "12"),
        ({"scalar": np.array(3.5, dtype=np.float32)}, {"scalar": "FP32"}, "", ""),
        ({"h": np.ones((3, 1), np.float16), "b": np.ones(4, np.float32)}, {"h": "FP16", "b": "BF16"}, "x" * 300, "7"),
        ({"empty": np.zeros((0, 4), np.float32)}, {"empty": "FP32"}, None, "1"),
    ],
)
def test_the_direct_response_serializer_matches_the_protobuf_runtime(outputs, datatypes, request_id, version) -> None:
    direct = serialize_model_infer_response("model-名", version, outputs, datatypes, request_id)
    tensor = pb.ModelInferResponse.InferOutputTensor
    built = pb.ModelInferResponse(  # the same message through the protobuf runtime: the reference
        model_name="model-名",
        model_version=version,
        id=request_id or "",
        outputs=[tensor(name=n, datatype=datatypes[n], shape=a.shape) for n, a in outputs.items()],
        raw_output_contents=[to_raw(a, datatypes[n]) for n, a in outputs.items()],
    )
    assert pb.ModelInferResponse.FromString(direct) == built
    assert direct == built.SerializeToString()
