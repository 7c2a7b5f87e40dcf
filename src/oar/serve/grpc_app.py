"""Open Inference Protocol v2 over gRPC (``inference.GRPCInferenceService``), on ``grpc.aio``.

A thin adapter over the same ``DataPlane`` as REST: it converts messages with
``oar.protocol.grpc_codec`` and ``OarError``s to status codes. It runs on the
same event loop as the REST server, so both feed the same batchers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from oar._core.errors import (
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    OarError,
    OverloadedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnauthorizedError,
)
from oar.protocol import grpc_service_pb2 as pb
from oar.protocol import grpc_service_pb2_grpc as pb_grpc
from oar.protocol.grpc_codec import decode_model_infer_request, encode_model_infer_response
from oar.serve.dataplane import DataPlane

log = logging.getLogger(__name__)
T = TypeVar("T")

# Most specific first: the first matching class decides the status.
_STATUS: list[tuple[type[OarError], grpc.StatusCode]] = [
    (RequestTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (PayloadTooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (UnauthorizedError, grpc.StatusCode.UNAUTHENTICATED),
    (ForbiddenError, grpc.StatusCode.PERMISSION_DENIED),
]


def status_of(error: OarError) -> grpc.StatusCode:
    for kind, code in _STATUS:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.UNAVAILABLE if error.http_status == 503 else grpc.StatusCode.INTERNAL


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        async def answer() -> pb.ModelReadyResponse:
            self._authorize(context)
            try:
                return pb.ModelReadyResponse(ready=self.dataplane.model_ready(request.name, request.version or None))
            except NotFoundError:  # as Triton: an unknown model or version is simply not ready
                return pb.ModelReadyResponse(ready=False)

        return await _guard(context, answer)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        async def answer() -> pb.ServerMetadataResponse:
            self._authorize(context)
            return pb.ServerMetadataResponse(**self.dataplane.server_metadata())

        return await _guard(context, answer)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        async def answer() -> pb.ModelMetadataResponse:
            self._authorize(context)
            meta = self.dataplane.model_metadata(request.name, request.version or None)
            return pb.ModelMetadataResponse(
                name=meta["name"],
                versions=meta["versions"],
                platform=meta["platform"],
                inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
                outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
            )

        return await _guard(context, answer)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        async def answer() -> pb.ModelInferResponse:
            self._authorize(context)
            return await self._infer(request)

        return await _guard(context, answer)

    async def ModelStreamInfer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Answers each request of the stream in order; an error answers that request only."""
        try:
            self._authorize(context)
        except OarError as exc:
            await context.abort(status_of(exc), str(exc))
        async for request in requests:
            try:
                yield pb.ModelStreamInferResponse(infer_response=await self._infer(request))
            except OarError as exc:
                yield pb.ModelStreamInferResponse(error_message=str(exc))
            except Exception:
                log.exception("unhandled error in ModelStreamInfer")
                yield pb.ModelStreamInferResponse(error_message="internal server error; see the server log")

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Any) -> pb.RepositoryIndexResponse:
        async def answer() -> pb.RepositoryIndexResponse:
            self.dataplane.authorize_admin(_authorization(context))
            entries = self.dataplane.repository_index()
            if request.ready:
                entries = [e for e in entries if e["state"] == "READY"]
            return pb.RepositoryIndexResponse(models=[pb.RepositoryIndexResponse.ModelIndex(**e) for e in entries])

        return await _guard(context, answer)

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        async def answer() -> pb.RepositoryModelLoadResponse:
            self.dataplane.authorize_admin(_authorization(context))
            parameters = {}
            for key, value in request.parameters.items():
                choice = value.WhichOneof("parameter_choice")
                parameters[key] = getattr(value, choice) if choice else None
            await self.dataplane.load_model(request.model_name, parameters)
            return pb.RepositoryModelLoadResponse()

        return await _guard(context, answer)

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        async def answer() -> pb.RepositoryModelUnloadResponse:
            self.dataplane.authorize_admin(_authorization(context))
            await self.dataplane.unload_model(request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return await _guard(context, answer)

    async def _infer(self, message: pb.ModelInferRequest) -> pb.ModelInferResponse:
        request = decode_model_infer_request(message)
        model, outputs = await self.dataplane.infer(message.model_name, message.model_version or None, request)
        return encode_model_infer_response(model.name, str(model.version), outputs, model.output_datatypes, request.id)

    def _authorize(self, context: Any) -> None:
        self.dataplane.authorize(_authorization(context))


def _authorization(context: Any) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value
    return None


async def _guard(context: Any, answer: Callable[[], Awaitable[T]]) -> T:
    """Run ``answer``; turn an ``OarError`` into its status code and a bug into INTERNAL (never a traceback)."""
    try:
        return await answer()
    except OarError as exc:
        await context.abort(status_of(exc), str(exc))
    except Exception:
        log.exception("unhandled error in gRPC call")
        await context.abort(grpc.StatusCode.INTERNAL, "internal server error; see the server log")
    raise AssertionError("unreachable: abort raises")


def create_grpc_server(dataplane: DataPlane, max_message_bytes: int) -> grpc.aio.Server:
    """A ``grpc.aio`` server with the inference service; the caller adds ports and starts it."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max(max_message_bytes, 64 * 1024 * 1024)),
        ("grpc.so_reuseport", 1),
    ]
    server = grpc.aio.server(options=options)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(dataplane), server)
    return server
