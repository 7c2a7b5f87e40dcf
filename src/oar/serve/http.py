"""A small HTTP/1.1 server on ``asyncio`` + ``httptools``, made for ``RestApp``.

Why not uvicorn on the hot path: ASGI costs a scope dict, a task, a
request-response cycle object and several coroutine hops per request, and on
one core that is a large share of a batched model's cost per request. Here a
request is parsed in ``data_received`` and handed to ``RestApp.handle`` with
its body already read; the response is written when it is ready, in request
order (pipelining-safe). It supports keep-alive, chunked request bodies,
``Expect: 100-continue``, TLS (through ``asyncio``), and a graceful shutdown
that lets in-flight requests finish.

Hostile clients are bounded (``ConnectionLimits``; the table is in docs/serving.md, "Security"):

- timeouts: a new connection and each request head must arrive within ``header_timeout_s``, a body within
  ``body_timeout_s`` of its head, an idle keep-alive connection closes after ``keepalive_timeout_s``, and a
  peer that reads none of our replies is cut after ``send_timeout_s``. A partial head or body that times out
  gets a 408; an idle connection is closed without a word, as nginx does;
- sizes: request target (414), head bytes and header count (431), body (413, refused on the declared
  ``Content-Length`` before a byte of it is read, and ``Expect: 100-continue`` is answered 100, 413 or 417);
- an error reply ends the connection with a lingering close: the answer is written, the write side shut
  down, and the client's input read and dropped for ``linger_s``, so a client still sending its body reads
  the answer instead of a connection reset;
- back-pressure: reading stops while ``write_buffer_bytes`` of replies are unsent (or 64 answers are
  pending), so a client that pipelines without reading holds a bounded buffer, not the server's memory;
- across connections: request bodies held by all of them together are bounded by
  ``max_buffered_body_bytes`` (``oar.serve.memory.BodyBudget``; past it the largest unfinished bodies get
  503 + ``Retry-After``), and under connection pressure the connections waiting longest on their client
  are closed first (``oar.serve.listener``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from http import HTTPStatus

import httptools
import orjson

from oar._core.errors import InvalidInputError, OarError, OverloadedError, PayloadTooLargeError
from oar.serve.batching import current_flow
from oar.serve.config import ConnectionLimits
from oar.serve.listener import Listener
from oar.serve.memory import BodyBudget
from oar.serve.rest import Headers, Response, RestApp

log = logging.getLogger(__name__)

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_MAX_PIPELINED = 64  # stop reading a connection that has this many answers pending
# Requests of one connection being handled at once; later pipelined ones wait their turn in the connection,
# so one pipelining client holds no more of a model's queue (and its latency budget) than a few others.
_MAX_RUNNING = 2
_KEEP, _CLOSE, _LINGER = 0, 1, 2  # what follows an answer: keep the connection, close it, lingering close
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ClientTimeoutError(InvalidInputError):
    http_status = 408


class UriTooLongError(InvalidInputError):
    http_status = 414


class HeadersTooLargeError(InvalidInputError):
    http_status = 431


class ExpectationFailedError(InvalidInputError):
    http_status = 417


class _Refusal(Exception):
    """Raised in a parser callback to stop parsing and answer ``error`` (httptools re-raises it as context)."""

    def __init__(self, error: OarError) -> None:
        self.error = error


def _callback_error(exc: httptools.HttpParserCallbackError) -> OarError:
    """The error a parser callback raised, without keeping the exception alive in the caller's frame.

    The refusal's traceback reaches ``data_received``'s frame (and the read buffer in it) through
    ``f_back``; held in a local there, it would make a cycle that only the (rarely run) cycle collector
    frees, so a flood of refused requests would pin a read buffer each.
    """
    refusal = exc.__context__
    return refusal.error if isinstance(refusal, _Refusal) else InvalidInputError(f"bad request: {exc}")


def _encode(response: Response, keep_alive: bool) -> bytes:
    status, body, headers = response
    lines = [b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\n" % (status, _REASONS.get(status, b""), len(body))]
    lines.extend(b"%s: %s\r\n" % header for header in headers)
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)


def _fill(slot: asyncio.Future[Response], task: asyncio.Task[Response]) -> None:
    if not slot.done() and not task.cancelled():
        slot.set_result(task.result())


def _error_response(exc: OarError) -> Response:
    headers = [(b"content-type", b"application/json")]
    if exc.http_status == 503:
        headers.append((b"retry-after", b"1"))
    return exc.http_status, orjson.dumps({"error": str(exc)}), headers


class HttpProtocol(asyncio.Protocol):
    """One connection: parse requests, dispatch them, write answers in order."""

    def __init__(self, app: RestApp, server: HttpServer) -> None:
        self.app = app
        self.server = server
        self.limits = server.limits
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client = "?"
        self.pending: deque[tuple[asyncio.Future[Response], int]] = deque()
        self.running = 0  # requests being handled
        self.parked: deque[tuple[asyncio.Future[Response], tuple[str, str, Headers, bytes, str]]] = deque()
        self.closing = False
        self.deadline = 0.0  # loop time at which timed_out() runs (the listener's sweep); 0 = none
        self.in_message = False  # between on_message_begin and on_message_complete
        self.in_head = True  # waiting for (the rest of) a request head
        self.completed = False  # a message ended in the chunk being parsed
        self.head_bytes = 0  # bytes of an unfinished head, counted a whole chunk at a time
        self.read_paused = False
        self.write_paused = False
        self.lingering = False  # the last answer is out: drop what the client still sends, until the deadline
        self.peer_done = False  # the client sent FIN with answers owed: probed until they are out
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: Headers = {}
        self.header_bytes = 0  # url + header fields, counted exactly by the callbacks
        self.header_count = 0
        self.body: list[bytes] = []
        self.size = 0

    # --- asyncio.Protocol ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=self.limits.write_buffer_bytes)  # type: ignore[attr-defined]
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else "?"
        self.deadline = self.server.now + self.limits.header_timeout_s
        self.server.connections.add(self)
        self.server.wait_on(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        self.deadline = 0.0
        for answer, _ in self.pending:  # nobody will read these: take them out of the model's queue
            answer.cancel()
        self._drop_body()
        # The parser holds this protocol's bound callbacks: break the cycle, so a closed connection and what
        # it buffered (a URL, headers, a body) go at once, not at the next (rare) run of the cycle collector.
        self._reset()
        self.parser = None

    def eof_received(self) -> bool | None:
        """The client has sent all it will: answer what it asked for, then close (half-close is allowed).

        A FIN does not say whether the client still reads (a half-close) or has gone (a plain close): a
        ``100 Continue`` probe tells them apart, since a closed socket answers it with a reset, which ends the
        connection at the next probe (each sweep, ``_probe``) and cancels what it asked for, a queued or
        running generation included. Clients must accept any number of 1xx before the answer (RFC 9110).
        """
        if self.pending and not self.lingering:
            self.closing = True
            self.peer_done = True
            self._probe()
            return True
        return None

    def _probe(self) -> None:
        """While answers are owed to a client that sent FIN: write an interim answer; a reset ends the connection."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_CONTINUE)
            self.deadline = self.server.now + self.server.tick

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # dropped: the answer is out, the client's remaining input is not wanted
        self.completed = False
        flow = current_flow.set(id(self))  # requests queued from here are this connection's (fair batching)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._refuse(_callback_error(exc))
            return
        except httptools.HttpParserUpgrade:
            self._refuse(InvalidInputError("protocol upgrades are not supported"))
            return
        except httptools.HttpParserError as exc:
            self._refuse(InvalidInputError(f"malformed HTTP request: {exc}"))
            return
        finally:
            current_flow.reset(flow)
        # An unfinished head: httptools holds a partial header field the callbacks have not seen yet. If no
        # message ended in this chunk, all of it belongs to this head; if one did (pipelining), it is not
        # counted, so a head can pass the limit by at most one read (256 KiB) before it is refused.
        if self.in_head and not self.completed:
            self.head_bytes += len(data)
            if self.head_bytes > self.limits.max_header_bytes:
                self._refuse(
                    HeadersTooLargeError(f"request head is over the {self.limits.max_header_bytes}-byte limit")
                )

    def pause_writing(self) -> None:
        """Over ``write_buffer_bytes`` unsent: stop reading requests until the client reads its answers."""
        self.write_paused = True
        if not self.lingering:
            self.deadline = self.server.now + self.limits.send_timeout_s
        self._pace()

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.lingering:
            self.deadline = 0.0  # re-armed below if reading resumes; else it waits on our own answers
        self._pace()

    # --- httptools callbacks ----------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._reset()
        self.in_message = self.in_head = True
        self.head_bytes = 0
        if not self.read_paused:
            self.deadline = self.server.now + self.limits.header_timeout_s

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_url_bytes:
            raise _Refusal(UriTooLongError(f"request target is over the {self.limits.max_url_bytes}-byte limit"))
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value
        self.header_bytes += len(name) + len(value) + 4
        self.header_count += 1
        if self.header_bytes > self.limits.max_header_bytes:
            raise _Refusal(HeadersTooLargeError(f"request head is over the {self.limits.max_header_bytes}-byte limit"))
        if self.header_count > self.limits.max_headers:
            raise _Refusal(HeadersTooLargeError(f"request has over {self.limits.max_headers} header fields"))

    def _count_head(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > self.limits.max_header_bytes:
            raise _Refusal(HeadersTooLargeError(f"request head is over the {self.limits.max_header_bytes}-byte limit"))

    def on_headers_complete(self) -> None:
        self.in_head = False
        if not self.read_paused:
            self.deadline = self.server.now + self.limits.body_timeout_s
        try:
            self.app.check_declared_length(self.headers)
        except PayloadTooLargeError as exc:
            raise _Refusal(exc) from None  # answered now: a client waiting on 100-continue never sends the body
        expect = self.headers.get(b"expect")
        if expect is not None:
            if expect.lower() != b"100-continue":
                raise _Refusal(ExpectationFailedError("only 'Expect: 100-continue' is supported"))
            if self.transport is not None and not self.pending:  # behind pending answers it would be out of order
                self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        size = len(body)
        if self.size + size > self.app.max_body_bytes:
            raise _Refusal(PayloadTooLargeError(f"request body is over the {self.app.max_body_bytes}-byte limit"))
        self.size += size
        self.body.append(body)
        if not self.server.budget.charge(size) and not self.server.make_room(self):
            raise _Refusal(self.server.over_budget())

    def _drop_body(self) -> None:
        """Forget an unfinished body (refused, or its connection is gone): its bytes leave the budget."""
        if self.size:
            self.server.budget.release(self.size)
            self.size = 0
        self.body = []

    def on_message_complete(self) -> None:
        self.in_message = False
        self.completed = True
        self.in_head = True
        self.head_bytes = 0
        self.deadline = 0.0  # being answered: the model's queue has its own timeout
        self.server.busy(self)
        after = _KEEP if self.parser.should_keep_alive() and not self.closing else _CLOSE
        method = self.parser.get_method().decode("latin-1")
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        held, self.size, self.body = self.size, 0, []  # the request holds the body now, until it is answered
        request = (method, path, self.headers, body, self.client)
        if self.running < _MAX_RUNNING:
            answer: asyncio.Future[Response] = self._start(request)
        else:  # a slot, filled when an earlier request of this connection has been answered
            answer = asyncio.get_running_loop().create_future()
            answer.add_done_callback(self._flush)
            self.parked.append((answer, request))
        if held:
            answer.add_done_callback(lambda _answer, budget=self.server.budget: budget.release(held))
        self.pending.append((answer, after))
        if len(self.pending) >= _MAX_PIPELINED:
            self._pace()

    def _start(self, request: tuple[str, str, Headers, bytes, str]) -> asyncio.Task[Response]:
        self.running += 1
        task = asyncio.get_running_loop().create_task(self.app.handle(*request))
        task.add_done_callback(self._answered)
        return task

    def _answered(self, _task: object) -> None:
        self.running -= 1
        while self.parked and self.running < _MAX_RUNNING:
            slot, request = self.parked.popleft()
            if not slot.done():  # not cancelled (connection lost)
                self._start(request).add_done_callback(lambda task, slot=slot: _fill(slot, task))
        self._flush()

    # --- responses --------------------------------------------------------------------------------------
    def _flush(self, _done: object = None) -> None:
        while self.pending and self.pending[0][0].done():
            answer, after = self.pending.popleft()
            transport = self.transport
            if transport is None or transport.is_closing() or answer.cancelled():
                continue
            transport.write(_encode(answer.result(), after == _KEEP))
            if after != _KEEP:
                self._end(after)
                return
        if self.read_paused:
            self._pace()
        if not self.pending and self.transport is not None:  # all answered: waiting on the client again
            self.server.wait_on(self, answered=True)
        if not self.pending and not self.in_message and self.transport is not None:
            if self.closing:
                self.transport.close()
            elif not self.write_paused:
                self.deadline = self.server.now + self.limits.keepalive_timeout_s

    def _refuse(self, exc: OarError) -> None:
        """Answer ``exc`` after the answers already pending, then end the connection with a lingering close."""
        if self.transport is None or self.lingering:
            return
        self.lingering = True  # from now on input is dropped
        self._drop_body()
        answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        answer.set_result(_error_response(exc))
        self.pending.append((answer, _LINGER))
        self.deadline = self.server.now + self.limits.linger_s
        self._pace()
        self._flush()

    def _end(self, after: int) -> None:
        """Close after the last answer; a lingering close shuts the write side first and drains the input."""
        transport = self.transport
        assert transport is not None
        if after == _LINGER and transport.can_write_eof():
            self.lingering = True
            transport.write_eof()
            self.deadline = self.server.now + self.limits.linger_s
            self._pace()
            return
        transport.close()
        self.transport = None

    def _pace(self) -> None:
        """Read only while answers can be delivered; a paused connection's request timeouts stop running."""
        transport = self.transport
        if transport is None:
            return
        backlog = _MAX_PIPELINED // 2 if self.read_paused else _MAX_PIPELINED - 1  # hysteresis: fewer pauses
        pause = not self.lingering and (self.write_paused or len(self.pending) > backlog)
        if pause == self.read_paused:
            return
        self.read_paused = pause
        now, limits = self.server.now, self.limits
        if pause:
            transport.pause_reading()
            if not self.write_paused:
                self.deadline = 0.0  # waiting on our own answers: no client timeout runs
            return
        transport.resume_reading()
        if self.lingering:
            return
        if self.in_message:  # the clock restarts: the wait was ours, not the client's
            self.deadline = now + (limits.header_timeout_s if self.in_head else limits.body_timeout_s)
        elif not self.pending:
            self.deadline = now + limits.keepalive_timeout_s
        else:
            self.deadline = 0.0

    def timed_out(self) -> None:
        """The listener's sweep: this connection's current deadline has passed."""
        transport = self.transport
        self.deadline = 0.0
        if transport is None or transport.is_closing():
            self.server.connections.discard(self)
        elif self.lingering or self.write_paused:
            transport.abort()  # done draining, or a peer that reads nothing: no answer can reach it
        elif self.peer_done and self.pending:
            self._probe()
        elif self.in_message:
            phase = "head" if self.in_head else "body"
            limit = self.limits.header_timeout_s if self.in_head else self.limits.body_timeout_s
            self._refuse(ClientTimeoutError(f"request {phase} did not arrive within {limit:g} s"))
        elif not self.pending:
            transport.close()  # an idle keep-alive connection, or a new one that never sent a request

    def evict(self) -> None:
        """Close now (no answer is owed): the listener makes room for other clients."""
        self.deadline = 0.0
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for answer, _ in self.pending:
            answer.cancel()
        self._drop_body()

    def shutdown(self) -> None:
        """Finish what is in flight, then close; idle connections close now."""
        self.closing = True
        if not self.pending and not self.in_message and self.transport is not None:
            self.transport.close()


class HttpServer(Listener):
    """``await HttpServer(app).start(host, port)``; ``await server.shutdown(grace)`` drains it."""

    def __init__(
        self, app: RestApp, ssl_context: ssl.SSLContext | None = None, limits: ConnectionLimits | None = None
    ) -> None:
        super().__init__(ssl_context, limits)
        self.app = app
        # At least two whole bodies of the app's limit, so no valid request waits on a budget it cannot fit.
        self.budget = BodyBudget(max(self.limits.max_buffered_body_bytes, 2 * app.max_body_bytes))

    def make_room(self, current: HttpProtocol) -> bool:
        """Over the body budget: answer 503 to the connections holding the largest unfinished bodies until
        the total is under its low-water mark. False when ``current`` is one of them (its caller refuses it)."""
        budget = self.budget
        holders = [
            c
            for c in self.connections
            if c.size and not c.lingering and c.transport is not None  # type: ignore[attr-defined]
        ]
        holders.sort(key=lambda c: c.size, reverse=True)
        for holder in holders:
            if budget.used <= budget.low_water:
                break
            if holder is current:
                return False
            holder._refuse(self.over_budget())
        return budget.used <= budget.limit

    def over_budget(self) -> OverloadedError:
        return OverloadedError(f"server holds its limit of {self.budget.limit} bytes of request bodies; retry later")

    def swept(self) -> None:
        self.budget.trim_if_due()

    def new_connection(self) -> HttpProtocol:
        return HttpProtocol(self.app, self)

    def refusal(self) -> bytes:
        message = f"server has {self.limits.max_connections} connections open (its limit); retry later"
        return _encode(
            (503, orjson.dumps({"error": message}), [(b"content-type", b"application/json"), (b"retry-after", b"1")]),
            keep_alive=False,
        )
