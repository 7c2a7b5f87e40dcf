"""The protocol-neutral data plane: what every front end (REST, gRPC) calls.

Front ends translate wire formats to these calls and ``OarError``s to their
status codes; nothing here knows about HTTP or protobuf. Batching, metrics
and authorization live here or below, so both front ends behave the same.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from oar import __version__
from oar._core.errors import ForbiddenError, InvalidInputError, OarError, OverloadedError, UnauthorizedError
from oar.protocol import InferRequest
from oar.serve.config import SecurityConfig, VersionPolicy
from oar.serve.generation import GenerationQueue
from oar.serve.metrics import ModelMetrics
from oar.serve.repository import LoadedModel, ModelRepository

SERVER_NAME = "oar"
EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics", "metrics"]


class DataPlane:
    def __init__(self, repository: ModelRepository, security: SecurityConfig | None = None) -> None:
        self.repository = repository
        self.security = security or SecurityConfig()
        self.draining = False

    # --- auth --------------------------------------------------------------------------------------
    def authorize(self, authorization: str | None) -> None:
        """Check ``Authorization: Bearer <token>`` for inference and metadata, when a token is configured."""
        security = self.security
        if security.token is not None and not _bearer_matches(authorization, security.token):
            raise UnauthorizedError("missing or wrong bearer token; send 'Authorization: Bearer <token>'")
        if security.token_digests and not _bearer_digest_matches(authorization, security.token_digests):
            raise UnauthorizedError("missing or wrong bearer token; send 'Authorization: Bearer <token>'")

    def authorize_admin(self, authorization: str | None) -> None:
        if self.security.admin_token is None:
            raise ForbiddenError("repository control is off; start the server with --admin-token to enable it")
        if not _bearer_matches(authorization, self.security.admin_token):
            raise UnauthorizedError("repository control needs 'Authorization: Bearer <admin token>'")

    # --- health and metadata -----------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return not self.draining and bool(self.repository.models())

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def model_ready(self, name: str, version: str | None = None) -> bool:
        self.repository.get(name, version)  # raises ModelNotFoundError
        return not self.draining

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self.repository.get(name, version)
        manifest = model.manifest
        parameters: dict[str, Any] = {"task": manifest.task, "labels": manifest.labels, "version": str(model.version)}
        if manifest.generation is not None:  # text-to-image: the defaults and caps a request must keep within
            parameters["generation"] = manifest.generation.model_dump()
        return {
            "name": name,
            "versions": [str(v) for v in self.repository.versions_of(name)],
            "platform": "diffusers" if manifest.runtime.engine == "diffusers" else "onnxruntime_onnx",
            "inputs": [t.model_dump() for t in manifest.inputs],
            "outputs": [t.model_dump() for t in manifest.outputs],
            "parameters": parameters,
        }

    def model_statistics(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self.repository.get(name, version)
        stats = model.metrics.statistics()
        return {"name": name, "version": str(model.version), **stats, "queue_depth": model.batcher.depth}

    # --- inference ----------------------------------------------------------------------------------
    async def infer(
        self, name: str, version: str | None, request: InferRequest
    ) -> tuple[LoadedModel, dict[str, np.ndarray]]:
        submission = self.submit(name, version, request)
        await submission.future  # cancelling the caller cancels the future: the request leaves the queue
        return submission.model, submission.outputs()

    def submit(self, name: str, version: str | None, request: InferRequest) -> Submission:
        """Check ``request`` and queue it; errors that need no model run raise here, the rest settle the future.

        Synchronous, so a front end can answer from a callback on the future with no task per request
        (gRPC's unary ``ModelInfer`` does); ``infer`` awaits it.
        """
        if self.draining:
            raise OverloadedError("server is shutting down; retry on another replica")
        model = self.repository.get(name, version)
        _check_inputs(model, request)
        wanted = _requested_outputs(model, request)
        priority, timeout_us = _scheduling(request)
        metrics = model.metrics
        batcher = model.batcher
        if isinstance(batcher, GenerationQueue):
            _binary_image(model, request)
        try:
            if isinstance(batcher, GenerationQueue):  # its settings travel as the request's parameters
                future = batcher.enqueue(request.inputs, priority, timeout_us, request.parameters)
            else:
                future = batcher.enqueue(request.inputs, priority, timeout_us)
        except Exception:  # refused (queue full, too large, unloading): a failure, counted as one
            metrics.failure.inc()
            metrics.failures += 1
            raise
        metrics.inflight.inc()
        future.add_done_callback(functools.partial(_record, metrics, time.perf_counter()))
        return Submission(model, future, wanted)

    # --- repository extension ----------------------------------------------------------------------
    def repository_index(self) -> list[dict[str, str]]:
        return self.repository.index()

    async def load_model(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        policy = (parameters or {}).get("version_policy")
        if policy is not None and not isinstance(policy, str):
            raise InvalidInputError("parameter 'version_policy' must be a string such as 'latest:1'")
        try:
            await self.repository.load(name, VersionPolicy.parse(policy) if policy else None)
        except OarError as exc:
            if 400 <= exc.http_status < 500:
                raise
            raise InvalidInputError(f"failed to load model '{name}' ({exc}); what was serving keeps serving") from None

    async def unload_model(self, name: str) -> None:
        await self.repository.unload(name)

    async def drain(self, timeout: float = 30.0) -> None:
        """Stop admitting requests, then let the queued ones finish."""
        self.draining = True
        await self.repository.drain(timeout)


@dataclass(slots=True)
class Submission:
    """A queued request: its model, and a future that settles with all the model's outputs."""

    model: LoadedModel
    future: asyncio.Future[dict[str, np.ndarray]]
    wanted: list[str] | None  # the outputs the request asked for; None: all

    def outputs(self) -> dict[str, np.ndarray]:
        """The requested outputs, once the future is done (raises its error, if it has one)."""
        outputs = self.future.result()
        return outputs if self.wanted is None else {o: outputs[o] for o in self.wanted}


def _record(metrics: ModelMetrics, started: float, future: asyncio.Future) -> None:
    """Count a settled request by its outcome (a done callback: it runs before the front end answers)."""
    metrics.inflight.dec()
    if future.cancelled():
        metrics.cancelled.inc()
    elif future.exception() is not None:
        metrics.failure.inc()
        metrics.failures += 1
    else:
        metrics.request_seconds.observe(time.perf_counter() - started)
        metrics.success.inc()
        metrics.successes += 1


def _bearer_matches(authorization: str | None, token: str) -> bool:
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), token.encode())


def _bearer_digest_matches(authorization: str | None, digests: tuple[str, ...]) -> bool:
    """Compare hashes: a server holding only the tokens' digests cannot leak a token."""
    if not authorization or not authorization.startswith("Bearer "):
        return False
    digest = hashlib.sha256(authorization[7:].strip().encode()).hexdigest()
    return any([hmac.compare_digest(digest, known) for known in digests])  # a list: compare them all


def _check_inputs(model: LoadedModel, request: InferRequest) -> None:
    """Names and datatypes against the model's signature, before the request joins a batch."""
    expected, inputs = model.input_dtypes, request.inputs
    if inputs.keys() != expected.keys():
        raise InvalidInputError(
            f"model '{model.name}' takes inputs {', '.join(expected)}; got: {', '.join(inputs) or 'none'}"
        )
    for name, dtype in expected.items():
        if inputs[name].dtype != dtype:
            datatype = next(spec.datatype for spec in model.manifest.inputs if spec.name == name)
            raise InvalidInputError(f"input '{name}' of model '{model.name}' must be {datatype}")


def _binary_image(model: LoadedModel, request: InferRequest) -> None:
    """A PNG is not text: over REST it travels as binary data (the binary tensor extension) unless refused."""
    request.parameters.setdefault("binary_data_output", True)
    if not request.wants_binary("image"):
        raise InvalidInputError(
            f"model '{model.name}' returns 'image' as PNG bytes, which JSON cannot hold: "
            "leave binary_data on for it (the binary tensor extension) or use gRPC"
        )


def _requested_outputs(model: LoadedModel, request: InferRequest) -> list[str] | None:
    if request.outputs is None:
        return None
    names = [o.name for o in request.outputs]
    known = model.output_datatypes
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInputError(f"model '{model.name}' has no output {', '.join(unknown)}; outputs: {', '.join(known)}")
    return names


def _scheduling(request: InferRequest) -> tuple[int, int | None]:
    """The ``priority`` (1 = highest, 0 = default) and ``timeout`` (µs) parameters that Triton clients send."""
    priority = request.parameters.get("priority", 0)
    timeout = request.parameters.get("timeout")
    if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
        raise InvalidInputError("parameter 'priority' must be a non-negative integer")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0):
        raise InvalidInputError("parameter 'timeout' must be a non-negative integer (microseconds)")
    return priority, timeout
