"""Our grpc_service.proto is wire-compatible with Triton's: same package, names, field numbers and types.

Checked against the descriptor that the real ``tritonclient`` package ships, so
a drift in either file fails here, not in a user's deployment.
"""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import Descriptor

from oar.protocol import grpc_service_pb2 as ours

triton = pytest.importorskip("tritonclient.grpc.service_pb2")


def _fields(message: Descriptor) -> dict[str, tuple[int, int, bool, str]]:
    return {
        f.name: (f.number, f.type, f.is_repeated, f.message_type.full_name if f.message_type else "")
        for f in message.fields
    }


def _all_messages(message: Descriptor, prefix: str = "") -> dict[str, Descriptor]:
    found = {prefix + message.name: message}
    for nested in message.nested_types:
        found |= _all_messages(nested, prefix + message.name + ".")
    return found


def test_every_message_we_declare_matches_triton_field_for_field() -> None:
    checked = 0
    for name, descriptor in ours.DESCRIPTOR.message_types_by_name.items():
        theirs = triton.DESCRIPTOR.message_types_by_name[name]
        for path, mine in _all_messages(descriptor).items():
            counterpart = _all_messages(theirs)[path]
            assert mine.full_name == counterpart.full_name
            assert _fields(mine) == _fields(counterpart), path
            checked += 1
    assert checked >= 30


def test_the_service_methods_match_triton_names_and_streaming_shapes() -> None:
    service = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    for method in service.methods:
        counterpart = theirs.methods_by_name[method.name]
        assert method.input_type.full_name == counterpart.input_type.full_name
        assert method.output_type.full_name == counterpart.output_type.full_name
        assert (method.client_streaming, method.server_streaming) == (
            counterpart.client_streaming,
            counterpart.server_streaming,
        )
    required = {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "ModelStreamInfer",
    }
    assert required <= set(service.methods_by_name)
