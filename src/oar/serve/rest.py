"""Open Inference Protocol v2 over HTTP/JSON, as a bare ASGI app.

No web framework sits on the hot path: routing is a split of the path, the
body is read once with a size cap, and every ``OarError`` becomes its HTTP
status with ``{"error": message}``, as the protocol asks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from oar._core.errors import InvalidInputError, NotFoundError, OarError, PayloadTooLargeError
from oar.protocol import decode_infer_request, encode_infer_response
from oar.serve.dataplane import DataPlane

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
_JSON_HEADERS = [(b"content-type", b"application/json")]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RestApp:
    """ASGI application: ``uvicorn.run(RestApp(dataplane))``."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, body = await self._route(scope, receive)
        except OarError as exc:
            status, body = exc.http_status, orjson.dumps({"error": str(exc)})
        except Exception:  # a bug must not take the server down or leak a traceback
            log.exception("unhandled error serving %s", scope.get("path"))
            status, body = 500, orjson.dumps({"error": "internal server error; see the server log"})
        await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
        await send({"type": "http.response.body", "body": body})

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        method, parts = scope["method"], scope["path"].strip("/").split("/")
        if not parts or parts[0] != "v2":
            raise NotFoundError(f"no route {scope['path']}; the API lives under /v2")
        rest = parts[1:]
        if not rest:
            _expect(method, "GET", scope)
            return 200, orjson.dumps(self.dataplane.server_metadata())
        if rest[0] == "health" and len(rest) == 2 and rest[1] in ("live", "ready"):
            _expect(method, "GET", scope)
            ok = self.dataplane.live() if rest[1] == "live" else self.dataplane.ready()
            return (200 if ok else 503), orjson.dumps({rest[1]: ok})
        if rest[0] == "models" and len(rest) >= 2:
            return await self._model_route(method, rest[1:], scope, receive)
        raise NotFoundError(f"no route {scope['path']}")

    async def _model_route(self, method: str, parts: list[str], scope: Scope, receive: Receive) -> tuple[int, bytes]:
        name, version, action = _split_model_path(parts, scope["path"])
        if action is None:
            _expect(method, "GET", scope)
            return 200, orjson.dumps(self.dataplane.model_metadata(name, version))
        if action == "ready":
            _expect(method, "GET", scope)
            return 200, orjson.dumps({"name": name, "ready": self.dataplane.model_ready(name, version)})
        _expect(method, "POST", scope)
        body = await self._read_body(scope, receive)
        request = decode_infer_request(body)
        model, outputs = self.dataplane.infer(name, version, request)
        return 200, encode_infer_response(
            model.name, str(model.version), outputs, model.output_datatypes, request.id
        )

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                raise PayloadTooLargeError(f"request body of {int(value)} bytes is over the {self.max_body_bytes}-byte limit")
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLargeError(f"request body is over the {self.max_body_bytes}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        if size == 0:
            raise InvalidInputError("request body is empty; send an inference request as JSON")
        return b"".join(chunks)


class MethodNotAllowedError(InvalidInputError):
    http_status = 405


def _expect(method: str, allowed: str, scope: Scope) -> None:
    if method != allowed:
        raise MethodNotAllowedError(f"{scope['path']} accepts {allowed}, not {method}")


def _split_model_path(parts: list[str], path: str) -> tuple[str, str | None, str | None]:
    """``[name]``, ``[name, versions, v]``, each optionally followed by ``ready`` or ``infer``."""
    name, rest = parts[0], parts[1:]
    version = None
    if rest[:1] == ["versions"]:
        if len(rest) < 2 or not rest[1]:
            raise NotFoundError(f"no route {path}: a version is missing after /versions/")
        version, rest = rest[1], rest[2:]
    if not rest:
        return name, version, None
    if len(rest) == 1 and rest[0] in ("ready", "infer"):
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
