"""Open Inference Protocol v2 over gRPC: the RPCs of ``inference.GRPCInferenceService``.

A thin adapter over the same ``DataPlane`` as REST: it converts messages with
``oar.protocol.grpc_codec`` and raises ``OarError``s, which the transport
(``oar.serve.grpc_server``) turns into status codes. It runs on the same event
loop as the REST server, so both feed the same batchers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import AsyncIterator

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
from oar.protocol.grpc_codec import (
    decode_model_infer_request,
    serialize_model_infer_response,
    serialize_model_stream_infer_response,
)
from oar.serve.config import ConnectionLimits
from oar.serve.dataplane import DataPlane, Submission
from oar.serve.grpc_server import GrpcServer, Metadata, Reply, Rpc
from oar.serve.http2_limits import Http2Limits

log = logging.getLogger(__name__)
SERVICE = "/inference.GRPCInferenceService/"

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


def _response(submission: Submission, request_id: str) -> bytes:
    """The serialized ``ModelInferResponse`` (written directly: see ``serialize_model_infer_response``)."""
    model = submission.model
    outputs = submission.outputs()
    return serialize_model_infer_response(model.name, str(model.version), outputs, model.output_datatypes, request_id)


def _answer(submission: Submission, request_id: str, reply: Reply, future: asyncio.Future) -> None:
    if future.cancelled():  # the client reset the stream or its deadline passed: the transport has answered
        return
    try:
        response = _response(submission, request_id)
    except Exception as exc:  # the model's error, or one encoding its outputs
        reply(exc)
    else:
        reply(response)


def status_of(error: OarError) -> grpc.StatusCode:
    for kind, code in _STATUS:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.UNAVAILABLE if error.http_status == 503 else grpc.StatusCode.INTERNAL


class InferenceService:
    """Each RPC as a coroutine of (request message, metadata); errors are raised as ``OarError``."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    def rpcs(self) -> dict[str, Rpc]:
        """The method table the transport routes ``:path`` with."""
        return {
            SERVICE + "ServerLive": Rpc(pb.ServerLiveRequest, self.server_live),
            SERVICE + "ServerReady": Rpc(pb.ServerReadyRequest, self.server_ready),
            SERVICE + "ModelReady": Rpc(pb.ModelReadyRequest, self.model_ready),
            SERVICE + "ServerMetadata": Rpc(pb.ServerMetadataRequest, self.server_metadata),
            SERVICE + "ModelMetadata": Rpc(pb.ModelMetadataRequest, self.model_metadata),
            SERVICE + "ModelInfer": Rpc(pb.ModelInferRequest, self.model_infer, callback=True),
            SERVICE + "ModelStreamInfer": Rpc(pb.ModelInferRequest, self.model_stream_infer, streaming=True),
            SERVICE + "RepositoryIndex": Rpc(pb.RepositoryIndexRequest, self.repository_index),
            SERVICE + "RepositoryModelLoad": Rpc(pb.RepositoryModelLoadRequest, self.repository_model_load),
            SERVICE + "RepositoryModelUnload": Rpc(pb.RepositoryModelUnloadRequest, self.repository_model_unload),
        }

    async def server_live(self, request: pb.ServerLiveRequest, metadata: Metadata) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def server_ready(self, request: pb.ServerReadyRequest, metadata: Metadata) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def model_ready(self, request: pb.ModelReadyRequest, metadata: Metadata) -> pb.ModelReadyResponse:
        self._authorize(metadata)
        try:
            return pb.ModelReadyResponse(ready=self.dataplane.model_ready(request.name, request.version or None))
        except NotFoundError:  # as Triton: an unknown model or version is simply not ready
            return pb.ModelReadyResponse(ready=False)

    async def server_metadata(self, request: pb.ServerMetadataRequest, metadata: Metadata) -> pb.ServerMetadataResponse:
        self._authorize(metadata)
        return pb.ServerMetadataResponse(**self.dataplane.server_metadata())

    async def model_metadata(self, request: pb.ModelMetadataRequest, metadata: Metadata) -> pb.ModelMetadataResponse:
        self._authorize(metadata)
        meta = self.dataplane.model_metadata(request.name, request.version or None)
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
        )

    def model_infer(self, request: pb.ModelInferRequest, metadata: Metadata, reply: Reply) -> asyncio.Future:
        """Queue the request; ``reply`` gets the serialized ``ModelInferResponse`` once its batch has run.

        A callback RPC (see ``Rpc``): the hot path pays no task or coroutine per call.
        """
        submission = self._submit(request, metadata)
        submission.future.add_done_callback(functools.partial(_answer, submission, request.id, reply))
        return submission.future

    def _submit(self, request: pb.ModelInferRequest, metadata: Metadata) -> Submission:
        self._authorize(metadata)
        decoded = decode_model_infer_request(request)
        return self.dataplane.submit(request.model_name, request.model_version or None, decoded)

    async def model_stream_infer(
        self, requests: AsyncIterator[pb.ModelInferRequest], metadata: Metadata
    ) -> AsyncIterator[bytes | pb.ModelStreamInferResponse]:
        """Answers each request of the stream in order; an error answers that request only."""
        self._authorize(metadata)
        async for request in requests:
            try:
                submission = self._submit(request, metadata)
                await submission.future
                yield serialize_model_stream_infer_response(_response(submission, request.id))
            except OarError as exc:
                yield pb.ModelStreamInferResponse(error_message=str(exc))
            except Exception:
                log.exception("unhandled error in ModelStreamInfer")
                yield pb.ModelStreamInferResponse(error_message="internal server error; see the server log")

    async def repository_index(
        self, request: pb.RepositoryIndexRequest, metadata: Metadata
    ) -> pb.RepositoryIndexResponse:
        self.dataplane.authorize_admin(_authorization(metadata))
        entries = self.dataplane.repository_index()
        if request.ready:
            entries = [e for e in entries if e["state"] == "READY"]
        return pb.RepositoryIndexResponse(models=[pb.RepositoryIndexResponse.ModelIndex(**e) for e in entries])

    async def repository_model_load(
        self, request: pb.RepositoryModelLoadRequest, metadata: Metadata
    ) -> pb.RepositoryModelLoadResponse:
        self.dataplane.authorize_admin(_authorization(metadata))
        parameters = {}
        for key, value in request.parameters.items():
            choice = value.WhichOneof("parameter_choice")
            parameters[key] = getattr(value, choice) if choice else None
        await self.dataplane.load_model(request.model_name, parameters)
        return pb.RepositoryModelLoadResponse()

    async def repository_model_unload(
        self, request: pb.RepositoryModelUnloadRequest, metadata: Metadata
    ) -> pb.RepositoryModelUnloadResponse:
        self.dataplane.authorize_admin(_authorization(metadata))
        await self.dataplane.unload_model(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    def _authorize(self, metadata: Metadata) -> None:
        self.dataplane.authorize(_authorization(metadata))


def _authorization(metadata: Metadata) -> str | None:
    value = metadata.get(b"authorization")
    return value.decode("latin-1") if value is not None else None


def create_grpc_server(
    dataplane: DataPlane,
    max_message_bytes: int,
    ssl_context: ssl.SSLContext | None = None,
    http2: Http2Limits | None = None,
    connection_limits: ConnectionLimits | None = None,
) -> GrpcServer:
    """The inference service on oar's HTTP/2 transport; the caller starts it (``await server.start(...)``)."""
    rpcs = InferenceService(dataplane).rpcs()
    return GrpcServer(rpcs, status_of, max_message_bytes, ssl_context, http2, connection_limits)
