"""JSON encoding of inference requests and responses (Open Inference Protocol v2, REST).

Includes the binary tensor extension: a body of ``Inference-Header-Content-Length``
bytes of JSON followed by raw tensors, one per input whose ``parameters`` carry
``binary_data_size``; outputs asked for with ``binary_data`` (or the request's
``binary_data_output``) come back the same way.

Requests are validated strictly, because a shape that does not match its data
is a client bug that must come back as a 400 with a message, not a crash deep
in the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from oar._core.errors import InvalidInputError
from oar.protocol.datatypes import numpy_dtype
from oar.protocol.raw import from_raw, to_raw


@dataclass(slots=True)  # not frozen: a frozen one's __init__ costs ~3x, on every request (bench/serve_micro.py)
class RequestedOutput:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InferRequest:
    inputs: dict[str, np.ndarray]
    id: str | None = None
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def wants_binary(self, output: str) -> bool:
        """Should ``output`` travel as raw bytes (binary extension) rather than a JSON list?"""
        default = self.parameters.get("binary_data_output") is True
        for requested in self.outputs or ():
            if requested.name == output:
                value = requested.parameters.get("binary_data", default)
                return value is True
        return default


def decode_infer_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Parse a JSON body, or with ``header_length`` a JSON header followed by binary tensors."""
    binary = memoryview(b"")
    if header_length is not None:
        if not 0 < header_length <= len(body):
            raise InvalidInputError(
                f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
            )
        body, binary = body[:header_length], memoryview(body)[header_length:]
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidInputError("request body must be a JSON object with an 'inputs' list")
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInputError("request must have a non-empty 'inputs' list")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for i, tensor in enumerate(raw_inputs):
        name, array, used = _decode_tensor(tensor, i, binary, offset)
        offset += used
        if name in inputs:
            raise InvalidInputError(f"input '{name}' appears more than once")
        inputs[name] = array
    if offset != len(binary):
        raise InvalidInputError(
            f"the body has {len(binary)} bytes of binary data but the inputs' binary_data_size add up to {offset}"
        )
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError("'id' must be a string")
    return InferRequest(
        inputs=inputs,
        id=request_id,
        outputs=_decode_outputs(payload.get("outputs")),
        parameters=_object(payload.get("parameters"), "parameters"),
    )


def encode_infer_response(
    model_name: str,
    model_version: str | None,
    outputs: dict[str, np.ndarray],
    datatypes: dict[str, str],
    request: InferRequest | None = None,
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when some outputs travel as binary."""
    body: dict[str, Any] = {"model_name": model_name, "outputs": []}
    if model_version is not None:
        body["model_version"] = model_version
    if request is not None and request.id is not None:
        body["id"] = request.id
    blobs: list[bytes] = []
    for name, array in outputs.items():
        datatype = datatypes[name]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if request is not None and request.wants_binary(name):
            blob = to_raw(array, datatype)
            blobs.append(blob)
            tensor["parameters"] = {"binary_data_size": len(blob)}
        elif datatype == "BYTES":
            tensor["data"] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.ravel()]
        else:
            tensor["data"] = array.ravel().tolist()
        body["outputs"].append(tensor)
    header = orjson.dumps(body)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _decode_tensor(tensor: Any, index: int, binary: memoryview, offset: int) -> tuple[str, np.ndarray, int]:
    if not isinstance(tensor, dict):
        raise InvalidInputError(f"inputs[{index}] must be an object with name, datatype, shape and data")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"inputs[{index}] has no 'name'")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str):
        raise InvalidInputError(f"input '{name}' has no 'datatype'")
    shape = tensor.get("shape")
    # bool is an int to Python: without the check, [true] became a shape of [1] (or a 500 further down)
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInputError(f"input '{name}' needs 'shape', a list of non-negative integers")
    dtype = numpy_dtype(datatype)
    size = _object(tensor.get("parameters"), f"input '{name}' parameters").get("binary_data_size")
    if size is not None:
        if "data" in tensor:
            raise InvalidInputError(f"input '{name}' has both 'data' and binary_data_size; send one")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInputError(f"input '{name}' binary_data_size must be a non-negative integer")
        if offset + size > len(binary):
            raise InvalidInputError(
                f"input '{name}' binary_data_size {size} runs past the {len(binary)} bytes of binary data"
            )
        return name, from_raw(binary[offset : offset + size], datatype, shape, name), size
    if "data" not in tensor:
        raise InvalidInputError(f"input '{name}' has no 'data'")
    flat = _flatten(tensor["data"], name)
    expected = math.prod(shape)
    if len(flat) != expected:
        raise InvalidInputError(f"input '{name}' has {len(flat)} elements but shape {shape} needs {expected}")
    return name, _to_array(flat, datatype, dtype, shape, name), 0


def _to_array(flat: list[Any], datatype: str, dtype: np.dtype, shape: list[int], name: str) -> np.ndarray:
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise InvalidInputError(f"input '{name}' is BYTES: every element must be a string")
        array = np.empty(len(flat), dtype=object)
        array[:] = [v.encode("utf-8") for v in flat]
        return array.reshape(shape)
    if any(isinstance(v, str) for v in flat):
        raise InvalidInputError(f"input '{name}' is {datatype} but its data holds strings")
    try:
        return np.asarray(flat, dtype=dtype).reshape(shape)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInputError(f"input '{name}' data does not fit {datatype}: {exc}") from None


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        if any(isinstance(v, (list, dict)) for v in data):
            raise InvalidInputError(f"input '{name}' data is ragged or holds objects")
        return data
    flat: list[Any] = []
    for item in data:
        if not isinstance(item, list):
            raise InvalidInputError(f"input '{name}' data is ragged")
        flat.extend(_flatten(item, name))
    return flat


def _decode_outputs(raw: Any) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in raw):
        raise InvalidInputError("'outputs' must be a list of objects with a 'name'")
    return [RequestedOutput(o["name"], _object(o.get("parameters"), "parameters")) for o in raw]


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"'{what}' must be a JSON object")
    return value
