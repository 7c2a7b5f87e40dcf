"""Open Inference Protocol v2 over HTTP, as a bare ASGI app.

No web framework sits on the hot path: routing is a split of the path, the
body is read once with a size cap, and every ``OarError`` becomes its HTTP
status with ``{"error": message}``, as the protocol asks. Supports the binary
tensor extension (``Inference-Header-Content-Length``), the repository
extension (admin token), per-model statistics and Prometheus ``/metrics``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from oar._core.errors import (
    InvalidInputError,
    NotFoundError,
    OarError,
    OverloadedError,
    PayloadTooLargeError,
    UnauthorizedError,
)
from oar.protocol import decode_infer_request, encode_infer_response
from oar.serve.dataplane import DataPlane
from oar.serve.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)
access_log = logging.getLogger("oar.access")

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
_JSON = (b"content-type", b"application/json")
_OCTETS = (b"content-type", b"application/octet-stream")
_HEADER_LENGTH = b"inference-header-content-length"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = dict[bytes, bytes]  # lower-case names
Response = tuple[int, bytes, list[tuple[bytes, bytes]]]
_PROMETHEUS = CONTENT_TYPE_LATEST.encode()


class MethodNotAllowedError(InvalidInputError):
    http_status = 405


class RestApp:
    """ASGI application: ``uvicorn.run(RestApp(dataplane))``."""

    def __init__(
        self, dataplane: DataPlane, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, access_log: bool = False
    ) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry (uvicorn or tests); ``oar serve`` uses ``oar.serve.http`` and calls ``handle`` directly."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        headers = dict(scope["headers"])
        try:
            body = await self._read_body(headers, receive)
        except OarError as exc:
            status, payload, extra = _error(exc)
        else:
            client = (scope.get("client") or ("?",))[0]
            status, payload, extra = await self.handle(scope["method"], scope["path"], headers, body, client)
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": payload})

    async def handle(self, method: str, path: str, headers: Headers, body: bytes, client: str = "?") -> Response:
        """One request, body already read (within the size limit): never raises, always a response."""
        started = time.perf_counter() if self.access_log else 0.0
        try:
            response = await self._route(method, path, headers, body)
        except OarError as exc:
            response = _error(exc)
        except Exception:  # a bug must not take the server down or leak a traceback
            log.exception("unhandled error serving %s", path)
            response = 500, orjson.dumps({"error": "internal server error; see the server log"}), [_JSON]
        if self.access_log:
            elapsed = round((time.perf_counter() - started) * 1000, 3)
            line = {"method": method, "path": path, "status": response[0], "bytes": len(response[1]), "ms": elapsed}
            access_log.info(orjson.dumps({**line, "client": client}).decode())
        return response

    def check_declared_length(self, headers: Headers) -> None:
        """Refuse a body by its ``Content-Length`` before reading it."""
        declared = headers.get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLargeError(
                f"request body of {int(declared)} bytes is over the {self.max_body_bytes}-byte limit"
            )

    async def _route(self, method: str, path: str, headers: Headers, body: bytes) -> Response:
        parts = path.strip("/").split("/")
        if parts == ["metrics"]:
            _expect(method, "GET", path)
            return 200, self.dataplane.repository.metrics.exposition(), [(b"content-type", _PROMETHEUS)]
        if not parts or parts[0] != "v2":
            raise NotFoundError(f"no route {path}; the API lives under /v2")
        rest = parts[1:]
        if rest[:1] == ["health"] and len(rest) == 2 and rest[1] in ("live", "ready"):
            _expect(method, "GET", path)
            ok = self.dataplane.live() if rest[1] == "live" else self.dataplane.ready()
            return (200 if ok else 503), orjson.dumps({rest[1]: ok}), [_JSON]
        if rest[:1] == ["repository"]:
            return await self._repository_route(method, path, rest[1:], headers, body)
        self.dataplane.authorize(_text(headers.get(b"authorization")))
        if not rest:
            _expect(method, "GET", path)
            return _json(self.dataplane.server_metadata())
        if rest[0] == "models" and len(rest) >= 2:
            return await self._model_route(method, path, rest[1:], headers, body)
        raise NotFoundError(f"no route {path}")

    async def _model_route(self, method: str, path: str, parts: list[str], headers: Headers, body: bytes) -> Response:
        name, version, action = _split_model_path(parts, path)
        if action != "infer":
            _expect(method, "GET", path)
            if action is None:
                return _json(self.dataplane.model_metadata(name, version))
            if action == "stats":
                return _json(self.dataplane.model_statistics(name, version))
            return _json({"name": name, "ready": self.dataplane.model_ready(name, version)})
        _expect(method, "POST", path)
        if not body:
            raise InvalidInputError("request body is empty; send an inference request as JSON")
        request = decode_infer_request(body, _header_length(headers))
        model, outputs = await self.dataplane.infer(name, version, request)
        payload, header_length = encode_infer_response(
            model.name, str(model.version), outputs, model.output_datatypes, request
        )
        if header_length is None:
            return 200, payload, [_JSON]
        return 200, payload, [_OCTETS, (_HEADER_LENGTH, str(header_length).encode())]

    async def _repository_route(
        self, method: str, path: str, parts: list[str], headers: Headers, body: bytes
    ) -> Response:
        self.dataplane.authorize_admin(_text(headers.get(b"authorization")))
        _expect(method, "POST", path)
        if parts == ["index"]:
            return _json(self.dataplane.repository_index())
        if len(parts) == 3 and parts[0] == "models" and parts[2] in ("load", "unload"):
            if parts[2] == "load":
                await self.dataplane.load_model(parts[1], _parameters(body))
            else:
                await self.dataplane.unload_model(parts[1])
            return 200, b"{}", [_JSON]
        raise NotFoundError(f"no route {path}")

    async def _read_body(self, headers: Headers, receive: Receive) -> bytes:
        self.check_declared_length(headers)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise InvalidInputError("client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLargeError(f"request body is over the {self.max_body_bytes}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _error(exc: OarError) -> Response:
    headers = [_JSON]
    if isinstance(exc, OverloadedError):
        headers.append((b"retry-after", b"1"))
    elif isinstance(exc, UnauthorizedError):
        headers.append((b"www-authenticate", b"Bearer"))
    return exc.http_status, orjson.dumps({"error": str(exc)}), headers


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _json(value: Any) -> Response:
    return 200, orjson.dumps(value), [_JSON]


def _header_length(headers: Headers) -> int | None:
    value = headers.get(_HEADER_LENGTH)
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidInputError(f"Inference-Header-Content-Length must be a byte count, got '{_text(value[:40])}'")
    return int(value)


def _parameters(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"request body is not valid JSON: {exc}") from None
    parameters = payload.get("parameters", {}) if isinstance(payload, dict) else None
    if not isinstance(parameters, dict):
        raise InvalidInputError("body must be a JSON object whose 'parameters' is an object")
    return parameters


def _expect(method: str, allowed: str, path: str) -> None:
    if method != allowed:
        raise MethodNotAllowedError(f"{path} accepts {allowed}, not {method}")


def _split_model_path(parts: list[str], path: str) -> tuple[str, str | None, str | None]:
    """``[name]``, ``[name, versions, v]``, each optionally followed by ``ready``, ``stats`` or ``infer``."""
    name, rest = parts[0], parts[1:]
    version = None
    if rest[:1] == ["versions"]:
        if len(rest) < 2 or not rest[1]:
            raise NotFoundError(f"no route {path}: a version is missing after /versions/")
        version, rest = rest[1], rest[2:]
    if not rest:
        return name, version, None
    if len(rest) == 1 and rest[0] in ("ready", "infer", "stats"):
        return name, version, rest[0]
    raise NotFoundError(f"no route {path}")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
