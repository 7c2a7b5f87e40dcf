"""A small HTTP/1.1 server on ``asyncio`` + ``httptools``, made for ``RestApp``.

Why not uvicorn on the hot path: ASGI costs a scope dict, a task, a
request-response cycle object and several coroutine hops per request, and on
one core that is a large share of a batched model's cost per request. Here a
request is parsed in ``data_received`` and handed to ``RestApp.handle`` with
its body already read; the response is written when it is ready, in request
order (pipelining-safe). It supports keep-alive, chunked request bodies,
``Expect: 100-continue``, a body size cap enforced while reading, TLS (through
``asyncio``), and a graceful shutdown that lets in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from http import HTTPStatus

import httptools
import orjson

from oar._core.errors import InvalidInputError, OarError, PayloadTooLargeError
from oar.serve.listener import Listener
from oar.serve.rest import Headers, Response, RestApp

log = logging.getLogger(__name__)

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_MAX_PIPELINED = 64  # stop reading a connection that has this many answers pending
# An oversized body is read and dropped up to this much past the limit, so the client (still sending) can read
# the 413; beyond it the connection is cut.
_MAX_DISCARD = 16 * 1024 * 1024


def _encode(response: Response, keep_alive: bool) -> bytes:
    status, body, headers = response
    lines = [b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\n" % (status, _REASONS.get(status, b""), len(body))]
    lines.extend(b"%s: %s\r\n" % header for header in headers)
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)


def _error_response(exc: OarError) -> Response:
    return exc.http_status, orjson.dumps({"error": str(exc)}), [(b"content-type", b"application/json")]


class HttpProtocol(asyncio.Protocol):
    """One connection: parse requests, dispatch them, write answers in order."""

    def __init__(self, app: RestApp, server: HttpServer) -> None:
        self.app = app
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client = "?"
        self.pending: deque[tuple[asyncio.Future[Response], bool]] = deque()
        self.closing = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: Headers = {}
        self.body: list[bytes] = []
        self.size = 0
        self.refused: OarError | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else "?"
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(InvalidInputError("protocol upgrades are not supported"))
        except httptools.HttpParserError as exc:
            self._fail(InvalidInputError(f"malformed HTTP request: {exc}"))

    # --- httptools callbacks ----------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        try:
            self.app.check_declared_length(self.headers)
        except PayloadTooLargeError as exc:
            self.refused = exc
            return
        if self.headers.get(b"expect", b"").lower() == b"100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.refused is not None:
            if self.size > self.app.max_body_bytes + _MAX_DISCARD:  # stop reading a flood; answer and hang up
                self._fail(self.refused)
            return
        if self.size > self.app.max_body_bytes:
            self.refused = PayloadTooLargeError(f"request body is over the {self.app.max_body_bytes}-byte limit")
            self.body = []
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive() and not self.closing
        loop = asyncio.get_running_loop()
        if self.refused is not None:
            answer: asyncio.Future[Response] = loop.create_future()
            answer.set_result(_error_response(self.refused))
            keep_alive = False  # the rest of an oversized body may still be in flight
        else:
            method = self.parser.get_method().decode("latin-1")
            path = self.url.split(b"?", 1)[0].decode("latin-1")
            body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
            answer = loop.create_task(self.app.handle(method, path, self.headers, body, self.client))
        self.pending.append((answer, keep_alive))
        answer.add_done_callback(self._flush)
        if len(self.pending) >= _MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()

    # --- responses --------------------------------------------------------------------------------------
    def _flush(self, _done: object = None) -> None:
        while self.pending and self.pending[0][0].done():
            answer, keep_alive = self.pending.popleft()
            if self.transport is None or self.transport.is_closing():
                continue
            self.transport.write(_encode(answer.result(), keep_alive))
            if not keep_alive:
                self.transport.close()
                self.transport = None
                return
        if self.transport is not None and len(self.pending) < _MAX_PIPELINED // 2:
            self.transport.resume_reading()
        if self.closing and not self.pending and self.transport is not None:
            self.transport.close()

    def _fail(self, exc: OarError) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_encode(_error_response(exc), keep_alive=False))
            self.transport.close()
        self.transport = None

    def shutdown(self) -> None:
        """Finish what is in flight, then close; idle connections close now."""
        self.closing = True
        if not self.pending and self.transport is not None:
            self.transport.close()


class HttpServer(Listener):
    """``await HttpServer(app).start(host, port)``; ``await server.shutdown(grace)`` drains it."""

    def __init__(self, app: RestApp, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context)
        self.app = app

    def new_connection(self) -> HttpProtocol:
        return HttpProtocol(self.app, self)
