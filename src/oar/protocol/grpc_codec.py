"""Protobuf messages of ``inference.GRPCInferenceService`` <-> the protocol-neutral request and tensors.

Inputs may come as ``raw_input_contents`` (one buffer per input, as Triton's
client sends them) or as typed ``contents``; outputs always go back as
``raw_output_contents``, which every Triton-compatible client reads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from oar._core.errors import InvalidInputError
from oar.protocol import grpc_service_pb2 as pb
from oar.protocol.codec import InferRequest, RequestedOutput
from oar.protocol.datatypes import numpy_dtype
from oar.protocol.raw import from_raw, to_raw

# Which typed field of InferTensorContents holds each datatype (FP16 and BF16 have none: raw only).
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def decode_model_infer_request(message: pb.ModelInferRequest) -> InferRequest:
    if not message.inputs:
        raise InvalidInputError("request must have at least one input")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidInputError(f"request has {len(message.inputs)} inputs but {len(raw)} raw_input_contents")
    inputs: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(message.inputs):
        if not tensor.name:
            raise InvalidInputError(f"inputs[{i}] has no name")
        if tensor.name in inputs:
            raise InvalidInputError(f"input '{tensor.name}' appears more than once")
        shape = list(tensor.shape)
        if any(d < 0 for d in shape):
            raise InvalidInputError(f"input '{tensor.name}' shape {shape} has a negative dimension")
        numpy_dtype(tensor.datatype)  # unknown datatypes fail here with the list of known ones
        if raw:
            inputs[tensor.name] = from_raw(raw[i], tensor.datatype, shape, tensor.name)
        else:
            inputs[tensor.name] = _from_contents(tensor, shape)
    outputs = [RequestedOutput(o.name, decode_parameters(o.parameters)) for o in message.outputs] or None
    return InferRequest(
        inputs=inputs, id=message.id or None, outputs=outputs, parameters=decode_parameters(message.parameters)
    )


def encode_model_infer_response(
    model_name: str,
    model_version: str,
    outputs: dict[str, np.ndarray],
    datatypes: dict[str, str],
    request_id: str | None = None,
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id or "")
    for name, array in outputs.items():
        datatype = datatypes[name]
        response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        response.raw_output_contents.append(to_raw(array, datatype))
    return response


def decode_parameters(parameters: Any) -> dict[str, Any]:
    """``map<string, InferParameter>`` -> plain values."""
    decoded: dict[str, Any] = {}
    for key, value in parameters.items():
        choice = value.WhichOneof("parameter_choice")
        decoded[key] = getattr(value, choice) if choice else None
    return decoded


def _from_contents(tensor: Any, shape: list[int]) -> np.ndarray:
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise InvalidInputError(f"input '{tensor.name}' is {tensor.datatype}: send it in raw_input_contents")
    values = getattr(tensor.contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidInputError(f"input '{tensor.name}' has {len(values)} elements but shape {shape} needs {count}")
    if tensor.datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    try:
        return np.asarray(values, dtype=numpy_dtype(tensor.datatype)).reshape(shape)
    except OverflowError as exc:
        raise InvalidInputError(f"input '{tensor.name}' data does not fit {tensor.datatype}: {exc}") from None
