"""``ModelClient`` / ``AsyncModelClient``: predictions from a served model in one call, over REST or gRPC.

>>> client = ModelClient("http://127.0.0.1:8500")          # or "grpc://127.0.0.1:8501"
>>> client.predict(model_id="chnsenti-cls", inputs={"text": "质量很好"})
{'label': 'positive', 'score': 0.98}
>>> png = client.predict(model_id="sketches", inputs={"prompt": "a lighthouse at dusk"}, parameters={"seed": 7})

A text-to-image model's ``predict`` returns the image as PNG bytes, whether or not Pillow is installed
(``PIL.Image.open(io.BytesIO(png))`` opens it; ``Path("out.png").write_bytes(png)`` saves it).

The scheme picks the transport (``http``/``https`` or ``grpc``/``grpcs``); both
keep one connection alive. ``ca_cert`` (a PEM file) trusts a private CA or a
self-signed server certificate instead of the system's roots. A request the server shed (503 /
RESOURCE_EXHAUSTED) is retried with exponential backoff, and so is one whose connection was
refused or reset before any answer (a replica that died: a balancer sends the retry to
another one): inference has no side effects, so a retry is always safe. Retries are
bounded by ``RetryPolicy.attempts``; a timeout is never retried (the server may still be
working on it).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oar._core.errors import ConnectionFailedError, InvalidInputError, OverloadedError
from oar.client._common import (
    RetryPolicy,
    generation_parameters,
    image_of,
    predictions,
    prompt_of,
    prompt_tensor,
    read_ca_cert,
    rest_path,
    split_model_id,
    text_tensor,
    texts_of,
)
from oar.client._rest import AsyncRestTransport, RestTransport

if TYPE_CHECKING:
    from oar.client._grpc import AsyncGrpcTransport, GrpcTransport

Tensors = dict[str, np.ndarray]


def _parse_endpoint(endpoint: str) -> tuple[str, str]:
    scheme, sep, rest = endpoint.rstrip("/").partition("://")
    if not sep or scheme not in ("http", "https", "grpc", "grpcs") or not rest:
        raise InvalidInputError(f"bad endpoint '{endpoint}': use http://HOST:PORT or grpc://HOST:PORT")
    return scheme, rest


class ModelClient:
    """A keep-alive client for one server. Use as a context manager or call ``close()``.

    ``ca_cert``: a PEM file of the certificates to trust for ``https://`` / ``grpcs://`` (a private CA, or
    the server's self-signed certificate) instead of the system's roots.
    """

    def __init__(
        self,
        endpoint: str = "http://127.0.0.1:8500",
        timeout: float = 30.0,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        ca_cert: str | Path | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.retry = retry or RetryPolicy()
        scheme, address = _parse_endpoint(self.endpoint)
        ca_pem = read_ca_cert(ca_cert, scheme)
        self._grpc = scheme.startswith("grpc")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._transport: RestTransport | GrpcTransport
        if self._grpc:
            from oar.client._grpc import GrpcTransport

            self._transport = GrpcTransport(address, timeout, token, secure=scheme == "grpcs", ca_pem=ca_pem)
        else:
            self._transport = RestTransport(self.endpoint, timeout, headers, ca_pem)

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def predict(
        self,
        model_id: str,
        inputs: dict[str, Any],
        version: str | int | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> dict[str, Any] | list[dict[str, Any]] | bytes:
        """Classify ``inputs["text"]``: one string gives one dict, a list of strings a list of dicts.

        Or generate from ``inputs["prompt"]`` (a text-to-image model): the PNG's bytes; ``parameters`` may
        set ``steps``, ``guidance``, ``seed``, ``width`` and ``height`` within the model's caps.
        ``model_id`` is ``"name"`` (latest version) or ``"name:version"``.
        """
        prompt = prompt_of(inputs)
        if prompt is not None:
            outputs = self.infer(model_id, prompt_tensor(prompt), version, generation_parameters(parameters))
            return image_of(outputs)
        texts, single = texts_of(inputs)
        return predictions(self.infer(model_id, text_tensor(texts), version=version), single)

    def infer(
        self,
        model_id: str,
        inputs: Tensors,
        version: str | int | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Tensors:
        """Send named tensors (and request parameters), get named tensors back (Open Inference Protocol v2)."""
        name, chosen = split_model_id(model_id, version)
        for attempt in range(self.retry.attempts):
            try:
                return self._transport.infer(name, chosen, inputs, parameters)
            except (OverloadedError, ConnectionFailedError):
                if attempt + 1 == self.retry.attempts:
                    raise
                time.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    def is_live(self) -> bool:
        if self._grpc:
            return self._transport.live()
        return self._transport.status("/v2/health/live") == 200

    def is_ready(self, model_id: str | None = None) -> bool:
        name, version = split_model_id(model_id, None) if model_id else (None, None)
        if self._grpc:
            return self._transport.ready(name, version)
        path = "/v2/health/ready" if name is None else rest_path(name, version, "ready")
        return self._transport.status(path) == 200

    def metadata(self, model_id: str | None = None) -> dict[str, Any]:
        """Server or model metadata (REST endpoints only)."""
        if self._grpc:
            raise InvalidInputError("metadata() needs an http:// endpoint")
        name, version = split_model_id(model_id, None) if model_id else (None, None)
        return self._transport.request("GET", "/v2" if name is None else rest_path(name, version))


class AsyncModelClient:
    """The asyncio twin of ``ModelClient``: ``await client.predict(...)``; ``async with`` closes it."""

    def __init__(
        self,
        endpoint: str = "http://127.0.0.1:8500",
        timeout: float = 30.0,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        ca_cert: str | Path | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.retry = retry or RetryPolicy()
        scheme, address = _parse_endpoint(self.endpoint)
        ca_pem = read_ca_cert(ca_cert, scheme)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._transport: AsyncRestTransport | AsyncGrpcTransport
        if scheme.startswith("grpc"):
            from oar.client._grpc import AsyncGrpcTransport

            self._transport = AsyncGrpcTransport(address, timeout, token, secure=scheme == "grpcs", ca_pem=ca_pem)
        else:
            self._transport = AsyncRestTransport(self.endpoint, timeout, headers, ca_pem)

    async def __aenter__(self) -> AsyncModelClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    async def predict(
        self,
        model_id: str,
        inputs: dict[str, Any],
        version: str | int | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> dict[str, Any] | list[dict[str, Any]] | bytes:
        prompt = prompt_of(inputs)
        if prompt is not None:
            outputs = await self.infer(model_id, prompt_tensor(prompt), version, generation_parameters(parameters))
            return image_of(outputs)
        texts, single = texts_of(inputs)
        return predictions(await self.infer(model_id, text_tensor(texts), version=version), single)

    async def infer(
        self,
        model_id: str,
        inputs: Tensors,
        version: str | int | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Tensors:
        name, chosen = split_model_id(model_id, version)
        for attempt in range(self.retry.attempts):
            try:
                return await self._transport.infer(name, chosen, inputs, parameters)
            except (OverloadedError, ConnectionFailedError):
                if attempt + 1 == self.retry.attempts:
                    raise
                await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")
