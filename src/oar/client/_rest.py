"""REST transports (httpx), sync and asyncio, each keeping its connection alive.

A transport turns (model, version, tensors) into tensors and failures into
``OarError``s; retries and the seed-style ``predict`` live in the client.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import numpy as np
import orjson

from oar._core.errors import ConnectionFailedError, OarError, ServerUnreachableError
from oar.client._common import ERRORS_BY_STATUS, decode_json_tensor, encode_json_tensor, rest_path
from oar.protocol.raw import from_raw

Tensors = dict[str, np.ndarray]
_HEADER_LENGTH = "inference-header-content-length"


def _rest_infer_body(inputs: Tensors, parameters: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"inputs": [encode_json_tensor(k, np.asarray(v)) for k, v in inputs.items()]}
    if parameters:
        body["parameters"] = parameters
    return orjson.dumps(body)


def _rest_outputs(response: httpx.Response, endpoint: str) -> Tensors:
    """The outputs of an answer, JSON or JSON + binary tensors (asked for with ``binary_data_output``)."""
    length = response.headers.get(_HEADER_LENGTH)
    if response.status_code >= 400 or length is None:
        return {out["name"]: decode_json_tensor(out) for out in _rest_result(response, endpoint)["outputs"]}
    content = response.content
    header, offset, outputs = orjson.loads(content[: int(length)]), int(length), {}
    for out in header["outputs"]:
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            outputs[out["name"]] = decode_json_tensor(out)
            continue
        raw = memoryview(content)[offset : offset + size]
        outputs[out["name"]] = from_raw(raw, out["datatype"], out["shape"], out["name"])
        offset += size
    return outputs


def _rest_result(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            message = orjson.loads(response.content)["error"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = response.text[:200] or response.reason_phrase
        raise ERRORS_BY_STATUS.get(response.status_code, OarError)(f"HTTP {response.status_code}: {message}")
    return orjson.loads(response.content)


def _verify(ca_pem: bytes | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cadata=ca_pem.decode("ascii")) if ca_pem else True


#: Failures that mean no server handled the request: refused, reset, or closed before an answer.
_NOT_SERVED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _unreachable(endpoint: str, exc: Exception) -> ServerUnreachableError:
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnreachableError(f"server at {endpoint} did not answer in time")
    if isinstance(exc, _NOT_SERVED):
        return ConnectionFailedError(f"cannot reach an oar server at {endpoint}: {type(exc).__name__}: {exc}")
    return ServerUnreachableError(f"cannot reach an oar server at {endpoint}: {exc}")


class RestTransport:
    def __init__(self, endpoint: str, timeout: float, headers: dict[str, str], ca_pem: bytes | None = None) -> None:
        self.endpoint = endpoint
        self._http = httpx.Client(base_url=endpoint, timeout=timeout, headers=headers, verify=_verify(ca_pem))

    def infer(
        self, name: str, version: str | None, inputs: Tensors, parameters: dict[str, Any] | None = None
    ) -> Tensors:
        body = _rest_infer_body(inputs, parameters)
        return _rest_outputs(self._send("POST", rest_path(name, version, "infer"), body), self.endpoint)

    def request(self, method: str, path: str, content: bytes | None = None) -> dict[str, Any]:
        return _rest_result(self._send(method, path, content), self.endpoint)

    def _send(self, method: str, path: str, content: bytes | None) -> httpx.Response:
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            return self._http.request(method, path, content=content, headers=headers)
        except (*_NOT_SERVED, httpx.TimeoutException) as exc:
            raise _unreachable(self.endpoint, exc) from None

    def status(self, path: str) -> int | None:
        try:
            return self._http.get(path).status_code
        except httpx.TransportError:
            return None

    def close(self) -> None:
        self._http.close()


class AsyncRestTransport:
    def __init__(self, endpoint: str, timeout: float, headers: dict[str, str], ca_pem: bytes | None = None) -> None:
        self.endpoint = endpoint
        self._http = httpx.AsyncClient(base_url=endpoint, timeout=timeout, headers=headers, verify=_verify(ca_pem))

    async def infer(
        self, name: str, version: str | None, inputs: Tensors, parameters: dict[str, Any] | None = None
    ) -> Tensors:
        body = _rest_infer_body(inputs, parameters)
        return _rest_outputs(await self._send("POST", rest_path(name, version, "infer"), body), self.endpoint)

    async def request(self, method: str, path: str, content: bytes | None = None) -> dict[str, Any]:
        return _rest_result(await self._send(method, path, content), self.endpoint)

    async def _send(self, method: str, path: str, content: bytes | None) -> httpx.Response:
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            return await self._http.request(method, path, content=content, headers=headers)
        except (*_NOT_SERVED, httpx.TimeoutException) as exc:
            raise _unreachable(self.endpoint, exc) from None

    async def status(self, path: str) -> int | None:
        try:
            return (await self._http.get(path)).status_code
        except httpx.TransportError:
            return None

    async def close(self) -> None:
        await self._http.aclose()
