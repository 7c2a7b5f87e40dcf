"""gRPC transports (grpcio), sync and asyncio; imported only for ``grpc://`` endpoints (grpc is slow to import)."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np

from oar._core.errors import (
    ConnectionFailedError,
    ForbiddenError,
    InvalidInputError,
    ModelNotFoundError,
    OarError,
    OverloadedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ServerUnreachableError,
    UnauthorizedError,
)
from oar.protocol import grpc_service_pb2 as pb
from oar.protocol import grpc_service_pb2_grpc as pb_grpc
from oar.protocol.datatypes import datatype_of
from oar.protocol.raw import from_raw, to_raw

Tensors = dict[str, np.ndarray]

_ERRORS_BY_CODE: dict[grpc.StatusCode, type[OarError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInputError,
    grpc.StatusCode.NOT_FOUND: ModelNotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthorizedError,
    grpc.StatusCode.PERMISSION_DENIED: ForbiddenError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: OverloadedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: RequestTimeoutError,
}


def _grpc_request(
    name: str, version: str | None, inputs: Tensors, parameters: dict[str, Any] | None = None
) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name=name, model_version=version or "")
    for key, value in (parameters or {}).items():
        _set_parameter(message.parameters[key], key, value)
    for key, value in inputs.items():
        array = np.asarray(value)
        datatype = datatype_of(array)
        message.inputs.add(name=key, datatype=datatype, shape=list(array.shape))
        message.raw_input_contents.append(to_raw(array, datatype))
    return message


def _set_parameter(target: pb.InferParameter, key: str, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int):
        target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    elif isinstance(value, str):
        target.string_param = value
    else:
        raise InvalidInputError(f"parameter '{key}' must be a bool, int, float or str over gRPC")


def _grpc_outputs(response: pb.ModelInferResponse) -> Tensors:
    return {
        out.name: from_raw(raw, out.datatype, list(out.shape), out.name)
        for out, raw in zip(response.outputs, response.raw_output_contents, strict=True)
    }


def _grpc_error(error: grpc.RpcError, address: str) -> OarError:
    code = error.code()  # type: ignore[attr-defined]
    if code == grpc.StatusCode.UNAVAILABLE:
        return ConnectionFailedError(f"cannot reach an oar gRPC server at {address}: {error.details()}")  # type: ignore[attr-defined]
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and "queue" not in (error.details() or ""):  # type: ignore[attr-defined]
        return ServerUnreachableError(f"gRPC server at {address} did not answer in time")
    message = f"gRPC {code.name}: {error.details()}"  # type: ignore[attr-defined]
    return _ERRORS_BY_CODE.get(code, PayloadTooLargeError if "larger than max" in message else OarError)(message)


def _metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


class GrpcTransport:
    def __init__(
        self, address: str, timeout: float, token: str | None, secure: bool, ca_pem: bytes | None = None
    ) -> None:
        self.endpoint = address
        self.timeout = timeout
        self._metadata = _metadata(token)
        self._channel = (
            grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca_pem))
            if secure
            else grpc.insecure_channel(address)
        )
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)

    def infer(
        self, name: str, version: str | None, inputs: Tensors, parameters: dict[str, Any] | None = None
    ) -> Tensors:
        try:
            response = self._stub.ModelInfer(
                _grpc_request(name, version, inputs, parameters), metadata=self._metadata, timeout=self.timeout
            )
        except grpc.RpcError as error:
            raise _grpc_error(error, self.endpoint) from None
        return _grpc_outputs(response)

    def live(self) -> bool:
        try:
            return self._stub.ServerLive(pb.ServerLiveRequest(), timeout=self.timeout).live
        except grpc.RpcError:
            return False

    def ready(self, name: str | None, version: str | None) -> bool:
        try:
            if name is None:
                return self._stub.ServerReady(pb.ServerReadyRequest(), timeout=self.timeout).ready
            request = pb.ModelReadyRequest(name=name, version=version or "")
            return self._stub.ModelReady(request, metadata=self._metadata, timeout=self.timeout).ready
        except grpc.RpcError:
            return False

    def close(self) -> None:
        self._channel.close()


class AsyncGrpcTransport:
    def __init__(
        self, address: str, timeout: float, token: str | None, secure: bool, ca_pem: bytes | None = None
    ) -> None:
        self.endpoint = address
        self.timeout = timeout
        self._metadata = _metadata(token)
        self._channel = (
            grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca_pem))
            if secure
            else grpc.aio.insecure_channel(address)
        )
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)

    async def infer(
        self, name: str, version: str | None, inputs: Tensors, parameters: dict[str, Any] | None = None
    ) -> Tensors:
        try:
            response = await self._stub.ModelInfer(
                _grpc_request(name, version, inputs, parameters), metadata=self._metadata, timeout=self.timeout
            )
        except grpc.RpcError as error:
            raise _grpc_error(error, self.endpoint) from None
        return _grpc_outputs(response)

    async def close(self) -> None:
        await self._channel.close()
