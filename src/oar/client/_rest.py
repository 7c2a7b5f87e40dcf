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

from oar._core.errors import OarError, ServerUnreachableError
from oar.client._common import ERRORS_BY_STATUS, decode_json_tensor, encode_json_tensor, rest_path

Tensors = dict[str, np.ndarray]


def _rest_infer_body(inputs: Tensors) -> bytes:
    return orjson.dumps({"inputs": [encode_json_tensor(k, np.asarray(v)) for k, v in inputs.items()]})


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


def _unreachable(endpoint: str, exc: Exception) -> ServerUnreachableError:
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnreachableError(f"server at {endpoint} did not answer in time")
    return ServerUnreachableError(f"cannot reach an oar server at {endpoint}: {exc}")


class RestTransport:
    def __init__(self, endpoint: str, timeout: float, headers: dict[str, str], ca_pem: bytes | None = None) -> None:
        self.endpoint = endpoint
        self._http = httpx.Client(base_url=endpoint, timeout=timeout, headers=headers, verify=_verify(ca_pem))

    def infer(self, name: str, version: str | None, inputs: Tensors) -> Tensors:
        result = self.request("POST", rest_path(name, version, "infer"), _rest_infer_body(inputs))
        return {out["name"]: decode_json_tensor(out) for out in result["outputs"]}

    def request(self, method: str, path: str, content: bytes | None = None) -> dict[str, Any]:
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            response = self._http.request(method, path, content=content, headers=headers)
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            raise _unreachable(self.endpoint, exc) from None
        return _rest_result(response, self.endpoint)

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

    async def infer(self, name: str, version: str | None, inputs: Tensors) -> Tensors:
        result = await self.request("POST", rest_path(name, version, "infer"), _rest_infer_body(inputs))
        return {out["name"]: decode_json_tensor(out) for out in result["outputs"]}

    async def request(self, method: str, path: str, content: bytes | None = None) -> dict[str, Any]:
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            response = await self._http.request(method, path, content=content, headers=headers)
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            raise _unreachable(self.endpoint, exc) from None
        return _rest_result(response, self.endpoint)

    async def status(self, path: str) -> int | None:
        try:
            return (await self._http.get(path)).status_code
        except httpx.TransportError:
            return None

    async def close(self) -> None:
        await self._http.aclose()
