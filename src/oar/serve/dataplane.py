"""The protocol-neutral data plane: what every front end (REST, gRPC) calls.

Front ends translate wire formats to these calls and ``OarError``s to their
status codes; nothing here knows about HTTP or protobuf. Batching, metrics
and authorization live here or below, so both front ends behave the same.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import numpy as np

from oar import __version__
from oar._core.errors import ForbiddenError, InvalidInputError, OarError, OverloadedError, UnauthorizedError
from oar.protocol import InferRequest
from oar.protocol.datatypes import numpy_dtype
from oar.serve.config import SecurityConfig, VersionPolicy
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
        if self.security.token is not None and not _bearer_matches(authorization, self.security.token):
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
        return {
            "name": name,
            "versions": [str(v) for v in self.repository.versions_of(name)],
            "platform": "onnxruntime_onnx",
            "inputs": [t.model_dump() for t in manifest.inputs],
            "outputs": [t.model_dump() for t in manifest.outputs],
            "parameters": {"task": manifest.task, "labels": manifest.labels, "version": str(model.version)},
        }

    def model_statistics(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self.repository.get(name, version)
        stats = model.metrics.statistics()
        return {"name": name, "version": str(model.version), **stats, "queue_depth": model.batcher.depth}

    # --- inference ---------------------------------------------------------------------------------
    async def infer(
        self, name: str, version: str | None, request: InferRequest
    ) -> tuple[LoadedModel, dict[str, np.ndarray]]:
        if self.draining:
            raise OverloadedError("server is shutting down; retry on another replica")
        model = self.repository.get(name, version)
        _check_inputs(model, request)
        wanted = _requested_outputs(model, request)
        priority, timeout_us = _scheduling(request)
        metrics = model.metrics
        metrics.inflight.inc()
        started = time.perf_counter()
        try:
            outputs = await model.batcher.submit(request.inputs, priority, timeout_us)
        except asyncio.CancelledError:
            metrics.cancelled.inc()
            raise
        except BaseException:
            metrics.failure.inc()
            metrics.failures += 1
            raise
        finally:
            metrics.inflight.dec()
        metrics.request_seconds.observe(time.perf_counter() - started)
        metrics.success.inc()
        metrics.successes += 1
        if wanted is not None:
            outputs = {o: outputs[o] for o in wanted}
        return model, outputs

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


def _bearer_matches(authorization: str | None, token: str) -> bool:
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), token.encode())


def _check_inputs(model: LoadedModel, request: InferRequest) -> None:
    """Names and datatypes against the model's signature, before the request joins a batch."""
    specs = model.manifest.inputs
    if set(request.inputs) != {s.name for s in specs}:
        raise InvalidInputError(
            f"model '{model.name}' takes inputs {', '.join(s.name for s in specs)}; "
            f"got: {', '.join(request.inputs) or 'none'}"
        )
    for spec in specs:
        if request.inputs[spec.name].dtype != numpy_dtype(spec.datatype):
            raise InvalidInputError(f"input '{spec.name}' of model '{model.name}' must be {spec.datatype}")


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
