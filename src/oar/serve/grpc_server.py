"""gRPC over HTTP/2, served from ``asyncio`` with a small hand-written HTTP/2 layer.

Why not grpcio's server: serving the same model on one pinned core,
``grpc.aio`` spends about 4x the server CPU per request of this transport and
the ``h2`` library about 4x as well (``bench/h2_alternatives.py``, figures in
docs/benchmarks.md). gRPC's promise (cheaper than
JSON) needs a transport that costs less than the model, so this one parses
frames with ``struct``, decodes request headers with ``hpack`` (the HPACK
library, stateful per connection), and sends only literal header fields, which
need no encoder state. Handlers are coroutines that get the decoded protobuf
message and the request metadata and raise ``OarError``, or, for the hot path,
callback handlers that answer through a ``reply`` function (see ``Rpc``); the
RPC table comes from ``oar.serve.grpc_app``. ``bench/h2_alternatives.py``
measures this choice against the ``h2`` state machine and ``grpc.aio`` behind
the same data plane (figures in ``docs/architecture.md``).

Covered: the connection preface, SETTINGS (ack; peer window and frame size),
PING, GOAWAY (both ways, graceful drain), RST_STREAM (cancels the handler),
WINDOW_UPDATE with flow control in both directions, CONTINUATION, padding,
``grpc-timeout``, trailers-only errors, bidirectional streams, message and
concurrency limits, TLS with ALPN ``h2``. Not covered: server push (gRPC never
uses it) and message compression (never advertised, so clients do not compress).

Hostile peers (RFC 9113 §10.5): every limit and frame budget is in
``oar.serve.http2_limits.Http2Limits``; an overdrawn budget is answered with
GOAWAY ``ENHANCE_YOUR_CALM``. Stream states follow §5.1 (idle, open,
half-closed, closed; a reused or idle stream id is a connection error), frame
rules §6, and header rules §8.2 (``oar.serve.http2_headers``). Memory per
connection is bounded by the receive window the server advertises (request
bytes are given back only once their call is answered) and by the write
high-water mark (the peer stops being read while its replies wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import ssl
import struct
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import hpack
from google.protobuf.message import DecodeError, Message

from oar._core.errors import OarError, RequestTimeoutError
from oar.serve.batching import current_flow
from oar.serve.config import ConnectionLimits
from oar.serve.http2_headers import MalformedHeaders, RequestHead, check_trailers, parse_request
from oar.serve.http2_limits import Http2Limits, TokenBucket
from oar.serve.listener import Listener

log = logging.getLogger(__name__)

Metadata = Mapping[bytes, bytes]
UnaryHandler = Callable[[Any, Metadata], Awaitable[Message | bytes]]  # bytes: an already serialized response
StreamHandler = Callable[[AsyncIterator[Any], Metadata], AsyncIterator[Message | bytes]]
Reply = Callable[[bytes | BaseException], None]  # the serialized response, or the error to answer with
CallbackHandler = Callable[[Any, Metadata, Reply], "Cancellable"]
StatusOf = Callable[[OarError], grpc.StatusCode]


class Cancellable(Protocol):
    def cancel(self, msg: Any | None = None) -> bool: ...


@dataclass(frozen=True)
class Rpc:
    """One method: its request message type and handler.

    ``streaming``: a bidirectional stream. ``callback``: a unary handler that is a plain function of
    (request, metadata, reply); it starts the work, returns something to cancel it with (the client
    resets the stream, or its deadline passes) and calls ``reply`` once when done. That spares the hot
    path (``ModelInfer``) a task and a stack of coroutines per call; errors it raises are answered too.
    """

    request_type: type[Message]
    handler: UnaryHandler | StreamHandler | CallbackHandler
    streaming: bool = False
    callback: bool = False


# --- HTTP/2 wire constants (RFC 9113) -----------------------------------------------------------------------
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 1, 2, 3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 4, 5, 6
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED = 0, 1, 2, 3, 4, 5
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 6, 7, 8, 9, 11

_FRAME = struct.Struct(">HBBBI")  # 24-bit length as 16 + 8 bits, type, flags, stream id
_U32 = struct.Struct(">I")
_MESSAGE_PREFIX = struct.Struct(">BI")  # gRPC length-prefixed message: compressed flag, length
MAX_FRAME = 16_384  # the frame size we accept (the protocol's default; clients split larger DATA)
DEFAULT_WINDOW = 65_535
MAX_WINDOW = 0x7FFFFFFF
_HEADER_CACHE_SIZE = 64  # distinct request header blocks remembered per connection
_MAX_QUEUED_MESSAGES = 256  # per bidirectional stream, not yet taken by its handler
_CLOSED_IDS_KEPT = 256  # recently closed streams remembered, to tell a late frame from a protocol error

# Response header blocks: HPACK literals without indexing (no encoder state), ``:status`` from the static table.
_STATUS_200 = b"\x88"  # indexed field 8, ":status: 200"
_CONTENT_TYPE = b"\x0f\x10\x10application/grpc"  # literal, static name index 31 (4-bit prefix 15 + 16)
_RESPONSE_HEADERS = _STATUS_200 + _CONTENT_TYPE
_STATUS_415 = b"\x08\x03415"  # literal, static name index 8 (":status")
_OK_TRAILERS = b"\x00\x0bgrpc-status\x010"


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return _FRAME.pack(size >> 8, size & 0xFF, kind, flags, stream_id) + payload


# A whole unary response in two packs: HEADERS, the DATA frame head with the message prefix, then (after the
# message) the OK trailers.
_UNARY_HEAD = struct.Struct(f">HBBBI{len(_RESPONSE_HEADERS)}sHBBBIBI")
_UNARY_TAIL = struct.Struct(f">HBBBI{len(_OK_TRAILERS)}s")


def _unary_response(stream_id: int, message: bytes) -> bytes:
    size = len(message) + 5
    head = _UNARY_HEAD.pack(
        0, len(_RESPONSE_HEADERS), HEADERS, END_HEADERS, stream_id, _RESPONSE_HEADERS,
        size >> 8, size & 0xFF, DATA, 0, stream_id, 0, len(message),
    )  # fmt: skip
    tail = _UNARY_TAIL.pack(0, len(_OK_TRAILERS), HEADERS, END_HEADERS | END_STREAM, stream_id, _OK_TRAILERS)
    return b"".join((head, message, tail))


def _literal(name: bytes, value: bytes) -> bytes:
    """An HPACK "literal header field without indexing, new name", no Huffman coding."""
    return b"\x00" + _hpack_string(name) + _hpack_string(value)


def _hpack_string(data: bytes) -> bytes:
    size = len(data)
    if size < 127:
        return bytes([size]) + data
    out = bytearray([127])
    size -= 127
    while size >= 128:
        out.append((size & 0x7F) | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + data


def status_trailers(code: grpc.StatusCode, message: str) -> bytes:
    block = _literal(b"grpc-status", str(code.value[0]).encode())
    if message:
        block += _literal(b"grpc-message", _percent_encode(message))
    return block


_NEEDS_ESCAPE = re.compile(rb"[^\x20-\x24\x26-\x7e]")


def _percent_encode(message: str) -> bytes:
    """grpc-message is percent-encoded UTF-8: printable ASCII other than '%' passes through.

    Every refused request pays for this, so the common all-plain message is returned as it is.
    """
    data = message.encode("utf-8")
    return _NEEDS_ESCAPE.sub(lambda match: b"%%%02X" % match[0][0], data)


_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def parse_timeout(value: bytes) -> float | None:
    """``grpc-timeout`` (e.g. ``100m``) in seconds; ``None`` when malformed (then it is ignored)."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


class _ConnectionError(Exception):
    """A connection error (RFC 9113 §5.4.1): GOAWAY with ``code``, then close."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class _StreamError(Exception):
    """A stream error (§5.4.2): RST_STREAM with ``code``; the connection goes on."""

    def __init__(self, stream_id: int, code: int, reason: str) -> None:
        super().__init__(reason)
        self.stream_id = stream_id
        self.code = code


class _Ignored(Exception):
    """A late frame of a stream we reset: dropped without an answer (RFC 9113 §5.1, closed)."""


_SELF_DEPENDENT = 0x100  # not a wire flag: marks a HEADERS frame whose priority names its own stream
_FRAMES_PER_TURN = 256  # frames handled per connection before the event loop serves other connections
_TURN_SECONDS = 0.002  # ... or this much time: a header block costs ~100x a PING, so frames alone are no measure
_CLOCK_EVERY = 8  # frames between looks at the clock
_CLOSE_GRACE = 5.0  # seconds a closing connection may take to flush its last frames to a peer that reads


class _Stream:
    """One RPC: its request bytes (or message queue, when streaming), the handler task and pending output."""

    __slots__ = (
        "body",
        "closed",
        "content_length",
        "headers_sent",
        "held",
        "id",
        "messages",
        "metadata",
        "outbox",
        "received",
        "recv_window",
        "remote_closed",
        "rpc",
        "send_window",
        "task",
        "timer",
        "trailers",
        "unreleased",
        "waiter",
    )

    def __init__(self, stream_id: int, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self.rpc: Rpc | None = None
        self.metadata: Mapping[bytes, bytes] = {}
        self.content_length: int | None = None
        self.body = bytearray()
        self.messages: asyncio.Queue[bytes | None] | None = None
        self.task: Cancellable | None = None  # the handler's task, or what a callback handler returned
        self.timer: asyncio.TimerHandle | None = None  # the deadline of a callback call
        self.send_window = send_window
        self.recv_window = recv_window  # what the client may still send on this stream
        self.held = 0  # received DATA bytes counted against the connection window until the call lets go of them
        self.unreleased = 0  # bytes let go of, not yet given back with a stream WINDOW_UPDATE
        self.received = 0  # request body bytes, to check against content-length
        self.outbox = bytearray()  # DATA payload waiting for flow-control window
        self.trailers: bytes | None = None  # the final HEADERS block, sent once the outbox is empty
        self.waiter: asyncio.Future[None] | None = None  # a streaming handler waiting for its replies to drain
        self.headers_sent = False
        self.closed = False
        self.remote_closed = False  # the client ended its side (half-closed remote, RFC 9113 §5.1)


class GrpcProtocol(asyncio.Protocol):
    """One HTTP/2 connection carrying gRPC calls."""

    def __init__(self, server: GrpcServer) -> None:
        self.server = server
        self.limits = limits = server.http2
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        self.transport: asyncio.Transport | None = None
        self.decoder = hpack.Decoder(max_header_list_size=limits.max_header_list_size)
        self.header_cache: dict[bytes, RequestHead | str] = {}  # a block -> its head, or why it is malformed
        self.buffer = bytearray()
        self.preface_seen = False
        self.settings_seen = False  # the client's first SETTINGS, which must follow the preface (§3.4)
        self.streams: dict[int, _Stream] = {}
        self.closed_ids: OrderedDict[int, bool] = OrderedDict()  # recently closed: True if we reset it
        self.last_stream_id = 0
        self.peer_window = DEFAULT_WINDOW  # initial send window of new streams, from the peer's SETTINGS
        self.peer_max_frame = MAX_FRAME
        self.send_window = DEFAULT_WINDOW  # connection-level
        self.window = server.receive_window  # advertised per connection and as every stream's initial window
        self.recv_window = self.window  # what the client may still send on the connection
        self.unreleased = 0  # bytes let go of, not yet given back with a connection WINDOW_UPDATE
        self.release_threshold = self.window // 4
        self.header_block: tuple[int, int, bytearray, list[int]] | None = None  # until END_HEADERS
        self.yielded = False  # reading paused until the next loop iteration: this turn's time is used up
        self.out: list[bytes] | None = None  # frames to send, gathered while a read is parsed
        self.ready: list[_Stream] = []  # unary calls to start once the current read is parsed
        self.closing = False
        self.write_paused = False
        self.turn_ends = 0.0  # when the current turn of this connection ends (perf_counter)
        self.active = False  # a stream opened since the idle timer last looked
        self.timer: asyncio.TimerHandle | None = None  # handshake timeout, then idle timeout
        self.resets = TokenBucket(limits.resets, now)
        self.stream_errors = TokenBucket(limits.stream_errors, now)
        self.control = TokenBucket(limits.control, now)
        self.window_updates = TokenBucket(limits.window_updates, now)
        self.empty_frames = TokenBucket(limits.empty_frames, now)

    # --- asyncio.Protocol ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self.server.wait_on(self)  # until it opens a stream, and whenever it has none open
        high = self.limits.write_high_water
        with contextlib.suppress(NotImplementedError):  # an in-memory transport (bench/serve_overhead.py)
            self.transport.set_write_buffer_limits(high=high, low=high // 4)
        limits = self.limits
        settings = b"".join(
            struct.pack(">HI", key, value)
            for key, value in (
                (SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams),
                (SETTINGS_INITIAL_WINDOW_SIZE, self.window),
                (SETTINGS_MAX_FRAME_SIZE, MAX_FRAME),
                (SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list_size),
            )
        )
        self._write(
            frame(SETTINGS, 0, 0, settings) + frame(WINDOW_UPDATE, 0, 0, _U32.pack(self.window - DEFAULT_WINDOW))
        )
        self.timer = self.loop.call_later(limits.handshake_timeout, self._handshake_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()
        for stream in self.streams.values():
            _cancel(stream)
        self.streams.clear()

    def pause_writing(self) -> None:
        """The peer is not reading its replies: stop reading its requests until it catches up."""
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.transport.is_closing() and not self.yielded:
            self.transport.resume_reading()
        for stream in list(self.streams.values()):
            self._wake(stream)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.yielded:
            self._process()

    def _process(self) -> None:
        """Handle what has been read, at most one turn's worth before other connections get theirs.

        A turn ends after ``_TURN_SECONDS`` (or ``_FRAMES_PER_TURN`` frames), counting the calls it
        started, and then reading pauses until the next loop iteration. uvloop reads a ready socket up
        to 32 times in one iteration, so without the pause one busy peer would hold the loop for 32
        turns while timers (the batcher's) and other connections wait.
        """
        self.out = []
        now = time.perf_counter()
        if now >= self.turn_ends:  # reads that come within a turn (uvloop's back-to-back ones) continue it
            self.turn_ends = now + _TURN_SECONDS
        turn_ends = self.turn_ends
        flow = current_flow.set(id(self))  # the batcher shares a model fairly between connections
        try:
            if not self.preface_seen:
                if len(self.buffer) < len(PREFACE):
                    if not PREFACE.startswith(bytes(self.buffer)):
                        raise _ConnectionError(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                    return
                if not self.buffer.startswith(PREFACE):
                    raise _ConnectionError(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                del self.buffer[: len(PREFACE)]
                self.preface_seen = True
            if self.ready:  # calls the last turn had no time left to start go first
                self._start_ready(turn_ends)
            if not self.ready:
                self._read_frames(turn_ends)
                if self.ready:
                    self._start_ready(turn_ends)
            if self.transport is not None and (self.ready or time.perf_counter() > turn_ends):
                self._yield_turn()
        except _ConnectionError as exc:
            self._go_away(exc.code, str(exc))
        except hpack.OversizedHeaderListError:
            self._go_away(ENHANCE_YOUR_CALM, f"header list over {self.limits.max_header_list_size} bytes")
        except hpack.HPACKError as exc:
            self._go_away(COMPRESSION_ERROR, f"bad header block: {exc}")
        finally:
            current_flow.reset(flow)
            self._flush_out()

    def _yield_turn(self) -> None:
        """Stop reading; go on with what is buffered on the next loop iteration, after other events."""
        if not self.yielded:
            self.yielded = True
            if self.transport is not None:
                self.transport.pause_reading()
            self.loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        if self.transport is None:
            return
        self.yielded = False
        self.turn_ends = 0.0
        self._process()  # yields again if this turn runs out too
        if not self.yielded and self.transport is not None and not self.write_paused:
            self.transport.resume_reading()

    def _read_frames(self, turn_ends: float) -> None:
        """Handle the complete frames in the buffer until the turn ends; the rest waits for the next turn."""
        buffer, position, end = self.buffer, 0, len(self.buffer)
        handled = 0
        while end - position >= 9 and self.transport is not None:
            if handled == _FRAMES_PER_TURN or (
                handled % _CLOCK_EVERY == _CLOCK_EVERY - 1 and time.perf_counter() > turn_ends
            ):
                del buffer[:position]
                self._yield_turn()
                return
            handled += 1
            high, low, kind, flags, stream_id = _FRAME.unpack_from(buffer, position)
            size = (high << 8) | low
            if size > MAX_FRAME:
                raise _ConnectionError(FRAME_SIZE_ERROR, f"frame of {size} bytes is over {MAX_FRAME}")
            if end - position - 9 < size:
                break
            payload = buffer[position + 9 : position + 9 + size]  # a copy (bytearray): the buffer moves on
            position += 9 + size
            try:
                self._on_frame(kind, flags, stream_id & 0x7FFFFFFF, payload)
            except _StreamError as exc:
                self._reset(exc.stream_id, exc.code)
            except _Ignored:
                pass
        del buffer[:position]

    # --- frames ----------------------------------------------------------------------------------------
    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self.header_block is not None and kind != CONTINUATION:
            raise _ConnectionError(PROTOCOL_ERROR, "expected CONTINUATION")
        if not self.settings_seen and kind != SETTINGS:
            raise _ConnectionError(PROTOCOL_ERROR, "the connection preface must be followed by SETTINGS")
        if kind == DATA:
            self._on_data(stream_id, flags, payload)
        elif kind == HEADERS:
            self._on_headers(stream_id, flags, payload)
        elif kind == CONTINUATION:
            self._on_continuation(stream_id, flags, payload)
        elif kind == WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == RST_STREAM:
            self._on_rst_stream(stream_id, payload)
        elif kind == SETTINGS:
            self._on_settings(stream_id, flags, payload)
        elif kind == PING:
            self._on_ping(stream_id, flags, payload)
        elif kind == PRIORITY:
            self._on_priority(stream_id, payload)
        elif kind == GOAWAY:
            if stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, "GOAWAY on a stream")
            if len(payload) < 8:
                raise _ConnectionError(FRAME_SIZE_ERROR, "GOAWAY payload under 8 bytes")
            self.closing = True
            self._close_if_idle()
        elif kind == PUSH_PROMISE:
            raise _ConnectionError(PROTOCOL_ERROR, "clients must not send PUSH_PROMISE")
        else:  # unknown frame types are ignored, as the protocol requires, but they are not free
            self._spend(self.control, "unknown frames")

    def _spend(self, bucket: TokenBucket, what: str) -> None:
        if not bucket.spend(self.loop.time()):
            raise _ConnectionError(ENHANCE_YOUR_CALM, f"too many {what}")

    def _on_ping(self, stream_id: int, flags: int, payload: bytes) -> None:
        if stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise _ConnectionError(FRAME_SIZE_ERROR, "PING payload must be 8 bytes")
        self._spend(self.control, "PINGs")  # an ACK too: we never ping, so every ACK is unsolicited
        if not flags & ACK:
            self._write(frame(PING, ACK, 0, payload))

    def _on_priority(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "PRIORITY on stream 0")
        self._spend(self.control, "PRIORITY frames")
        if len(payload) != 5:
            raise _StreamError(stream_id, FRAME_SIZE_ERROR, "PRIORITY payload must be 5 bytes")
        if _U32.unpack_from(payload)[0] & 0x7FFFFFFF == stream_id:
            raise _StreamError(stream_id, PROTOCOL_ERROR, "a stream cannot depend on itself")

    def _on_rst_stream(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "RST_STREAM payload must be 4 bytes")
        if stream_id > self.last_stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, f"RST_STREAM on idle stream {stream_id}")
        self._spend(self.resets, "stream resets")  # rapid reset (CVE-2023-44487)
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            _cancel(stream)
            self._remember_closed(stream_id, by_us=False)
            self._let_go(stream, stream.held)
            self._close_if_idle()

    def _on_headers(self, stream_id: int, flags: int, payload: bytes) -> None:
        if stream_id == 0 or stream_id % 2 == 0:
            raise _ConnectionError(PROTOCOL_ERROR, f"HEADERS on invalid stream {stream_id}")
        payload = _strip_padding(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(payload) < 5:
                raise _ConnectionError(FRAME_SIZE_ERROR, "HEADERS too short for its priority fields")
            depends_on_itself = _U32.unpack_from(payload)[0] & 0x7FFFFFFF == stream_id
            payload = payload[5:]
            if depends_on_itself:
                flags |= _SELF_DEPENDENT  # decode the block (HPACK state), then reset the stream
        if not payload:
            self._spend(self.empty_frames, "empty frames")
        if flags & END_HEADERS:
            self._on_header_block(stream_id, flags, payload)
        else:
            self.header_block = (stream_id, flags, bytearray(payload), [0])

    def _on_continuation(self, stream_id: int, flags: int, payload: bytes) -> None:
        """CVE-2024-27316: a block's size and its number of frames are capped, and empty frames are spent."""
        if self.header_block is None or self.header_block[0] != stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "unexpected CONTINUATION")
        block_stream, block_flags, block, count = self.header_block
        count[0] += 1
        if count[0] > self.limits.max_continuations:
            raise _ConnectionError(ENHANCE_YOUR_CALM, f"header block over {self.limits.max_continuations} frames")
        if not payload:
            self._spend(self.empty_frames, "empty frames")
        block.extend(payload)
        if len(block) > 2 * self.limits.max_header_list_size:  # encoded; the decoder checks the decoded size
            raise _ConnectionError(ENHANCE_YOUR_CALM, f"header list over {self.limits.max_header_list_size} bytes")
        if flags & END_HEADERS:
            self.header_block = None
            self._on_header_block(block_stream, block_flags, bytes(block))

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers from the client end its side of the stream
            self._on_trailers(stream, flags, block)
            return
        if stream_id <= self.last_stream_id:
            self._decode(block)  # the HPACK state must follow every block
            self._on_closed_stream(stream_id, "HEADERS")
            raise _ConnectionError(PROTOCOL_ERROR, f"stream id {stream_id} is not above the last one opened")
        self.last_stream_id = stream_id
        try:
            head = self._decode_request(bytes(block))  # bytes: the block is the cache's key
        except MalformedHeaders as exc:
            raise _StreamError(stream_id, PROTOCOL_ERROR, str(exc)) from None
        if flags & _SELF_DEPENDENT:
            raise _StreamError(stream_id, PROTOCOL_ERROR, "a stream cannot depend on itself")
        if self.closing:
            self._reset(stream_id, REFUSED_STREAM)
            return
        if len(self.streams) >= self.limits.max_concurrent_streams:
            self._reset(stream_id, REFUSED_STREAM)  # the peer ignored our SETTINGS: spends the reset budget
            return
        stream = _Stream(stream_id, self.peer_window, self.window)
        self.active = True
        self.streams[stream_id] = stream
        self.server.busy(self)
        self._start(stream, head)
        if flags & END_STREAM and not stream.closed:
            self._on_remote_end(stream)

    def _on_trailers(self, stream: _Stream, flags: int, block: bytes) -> None:
        headers, _ = self._decode(block)
        if stream.remote_closed:
            raise _StreamError(stream.id, STREAM_CLOSED, "HEADERS after the client ended the stream")
        if not flags & END_STREAM:
            raise _StreamError(stream.id, PROTOCOL_ERROR, "trailers without END_STREAM")
        try:
            check_trailers(headers)
        except MalformedHeaders as exc:
            raise _StreamError(stream.id, PROTOCOL_ERROR, str(exc)) from None
        self._on_remote_end(stream)

    def _decode(self, block: bytes) -> tuple[list[tuple[bytes, bytes]], bool]:
        """HPACK-decode ``block``, and say whether that changed the dynamic table (then the cache is emptied)."""
        table = self.decoder.header_table
        before = (table.maxsize, tuple(table.dynamic_entries))
        headers = self.decoder.decode(block, raw=True)
        changed = (table.maxsize, tuple(table.dynamic_entries)) != before
        if changed:
            self.header_cache.clear()
        return headers, changed

    def _decode_request(self, block: bytes) -> RequestHead:
        """Decode and check a request's header block, from a per-connection cache when that cannot change it.

        A client repeating a call sends the same bytes each time (indexed fields and literals that are
        not indexed), and decoding them is a large share of a small call's cost. A block is cached only
        if decoding it left the dynamic table as it was; any change to the table empties the cache,
        since cached blocks may refer to its entries.
        """
        cached = self.header_cache.get(block)
        if cached is None:
            headers, changed = self._decode(block)
            cached = _checked_head(headers)
            if not changed and len(self.header_cache) < _HEADER_CACHE_SIZE:
                self.header_cache[block] = cached  # a repeated bad request costs a lookup (reset floods)
        if isinstance(cached, str):
            raise MalformedHeaders(cached)  # a new one each time: a cached exception would grow a traceback
        return cached

    def _start(self, stream: _Stream, head: RequestHead) -> None:
        stream.metadata = head.metadata
        stream.content_length = head.content_length
        if not head.content_type.startswith(b"application/grpc"):
            self._finish(stream, frame(HEADERS, END_HEADERS | END_STREAM, stream.id, _STATUS_415))
            return
        rpc = self.server.rpcs.get(head.path)
        if rpc is None:
            self._fail(stream, grpc.StatusCode.UNIMPLEMENTED, f"unknown method {head.path}")
            return
        stream.rpc = rpc
        if rpc.streaming:
            stream.messages = asyncio.Queue()
            stream.task = self.loop.create_task(self._run(stream, self._streaming(stream)))

    def _on_data(self, stream_id: int, flags: int, payload: bytes) -> None:
        if stream_id == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        if size > self.recv_window:
            raise _ConnectionError(FLOW_CONTROL_ERROR, "DATA beyond the connection's flow-control window")
        self.recv_window -= size
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            self._release(size)  # never buffered
            if stream is not None:
                raise _StreamError(stream_id, STREAM_CLOSED, "DATA after the client ended the stream")
            if stream_id > self.last_stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            self._on_closed_stream(stream_id, "DATA")
            raise _ConnectionError(STREAM_CLOSED, f"DATA on closed stream {stream_id}")
        if size > stream.recv_window:
            self._release(size)
            raise _StreamError(stream_id, FLOW_CONTROL_ERROR, "DATA beyond the stream's flow-control window")
        stream.recv_window -= size
        stream.held += size  # given back when the call is over (or, when streaming, its message is taken)
        if flags & PADDED:
            payload = _strip_padding(flags, payload)
            self._let_go(stream, size - len(payload))  # padding is never buffered
        if not payload and not flags & END_STREAM:
            self._spend(self.empty_frames, "empty frames")  # CVE-2019-9518
        stream.received += len(payload)
        stream.body += payload
        if stream.messages is not None:
            self._queue_messages(stream)
        elif len(stream.body) > self.server.max_message_bytes + 5:
            self._fail(stream, grpc.StatusCode.RESOURCE_EXHAUSTED, self.server.too_large_message())
            return
        if flags & END_STREAM and not stream.closed:
            self._on_remote_end(stream)

    def _queue_messages(self, stream: _Stream) -> None:
        """Bidirectional stream: hand each complete message to the handler."""
        assert stream.messages is not None
        while len(stream.body) >= 5:
            compressed, length = _MESSAGE_PREFIX.unpack_from(stream.body)
            if compressed or length > self.server.max_message_bytes:
                reason = "compressed messages are not supported" if compressed else self.server.too_large_message()
                self._fail(stream, grpc.StatusCode.RESOURCE_EXHAUSTED, reason)
                return
            if len(stream.body) < 5 + length:
                break
            if stream.messages.qsize() >= _MAX_QUEUED_MESSAGES:
                self._fail(stream, grpc.StatusCode.RESOURCE_EXHAUSTED, "too many messages queued on this stream")
                return
            stream.messages.put_nowait(bytes(stream.body[5 : 5 + length]))
            del stream.body[: 5 + length]

    def _on_remote_end(self, stream: _Stream) -> None:
        stream.remote_closed = True
        if stream.content_length is not None and stream.content_length != stream.received:
            self._reset(stream.id, PROTOCOL_ERROR)  # §8.1.1: the body does not match content-length
            return
        if stream.messages is not None:
            stream.messages.put_nowait(None)
        elif stream.rpc is not None and stream.task is None:
            self.ready.append(stream)

    def _start_ready(self, turn_ends: float) -> None:
        """Start the unary calls whose requests arrived whole, unless they were reset since.

        Starting them after the read, not as each request ends, means a stream opened and reset in the
        same read (rapid reset, CVE-2023-44487) costs a few frame parses and never reaches the model.
        Starting a call (decoding, checking, queueing it) is the dearest part of a turn, so the turn's
        clock counts it: at least one call starts, and those left start in the next turn.
        """
        ready, taken = self.ready, 0
        while taken < len(ready) and (taken == 0 or time.perf_counter() <= turn_ends):
            stream = ready[taken]
            taken += 1
            if stream.closed or stream.rpc is None:
                continue
            if stream.rpc.callback:
                self._call(stream, stream.rpc)
            else:
                stream.task = self.loop.create_task(self._run(stream, self._unary(stream)))
        del ready[:taken]

    def _on_settings(self, stream_id: int, flags: int, payload: bytes) -> None:
        if stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            self._spend(self.control, "SETTINGS frames")
            return
        if len(payload) % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS payload is not a multiple of 6 bytes")
        if self.settings_seen:
            self._spend(self.control, "SETTINGS frames")
        else:
            self.settings_seen = True
            self._handshake_done()
        for offset in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, offset)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, "initial window size over 2^31-1")
                for stream in self.streams.values():
                    stream.send_window += value - self.peer_window
                    if stream.send_window > MAX_WINDOW:
                        raise _ConnectionError(FLOW_CONTROL_ERROR, "a stream's window would pass 2^31-1")
                self.peer_window = value
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not MAX_FRAME <= value <= 0xFFFFFF:
                    raise _ConnectionError(PROTOCOL_ERROR, f"invalid max frame size {value}")
                self.peer_max_frame = value
            elif key == SETTINGS_ENABLE_PUSH and value > 1:
                raise _ConnectionError(PROTOCOL_ERROR, f"invalid enable push {value}")
            # The peer's header table size does not constrain us: we never index response headers.
        self._write(frame(SETTINGS, ACK, 0))
        self._flush_all()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE payload must be 4 bytes")
        self._spend(self.window_updates, "WINDOW_UPDATE frames")  # a data dribble (CVE-2019-9511)
        increment = _U32.unpack(payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise _ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE with a zero increment")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "connection window over 2^31-1")
            self._flush_all()
            return
        if stream_id > self.last_stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {stream_id}")
        stream = self.streams.get(stream_id)
        if increment == 0:
            raise _StreamError(stream_id, PROTOCOL_ERROR, "WINDOW_UPDATE with a zero increment")
        if stream is not None:
            stream.send_window += increment
            if stream.send_window > MAX_WINDOW:
                raise _StreamError(stream_id, FLOW_CONTROL_ERROR, "stream window over 2^31-1")
            self._flush(stream)

    # --- receive window --------------------------------------------------------------------------------
    def _release(self, size: int) -> None:
        """Give ``size`` bytes back to the connection window, in updates of a quarter window."""
        self.unreleased += size
        if self.unreleased >= self.release_threshold:
            self._write(frame(WINDOW_UPDATE, 0, 0, _U32.pack(self.unreleased)))
            self.recv_window += self.unreleased
            self.unreleased = 0

    def _let_go(self, stream: _Stream, size: int) -> None:
        """The call no longer holds ``size`` of its request bytes: the client may send that much more."""
        size = min(size, stream.held)  # a stream that ended has given back everything already
        if size <= 0:
            return
        stream.held -= size
        self._release(size)
        if stream.remote_closed or stream.closed:
            return
        stream.unreleased += size
        if stream.unreleased >= self.release_threshold:
            self._write(frame(WINDOW_UPDATE, 0, stream.id, _U32.pack(stream.unreleased)))
            stream.recv_window += stream.unreleased
            stream.unreleased = 0

    # --- timers ----------------------------------------------------------------------------------------
    def _handshake_expired(self) -> None:
        self.timer = None
        if self.transport is not None:
            self._go_away(SETTINGS_TIMEOUT, "no HTTP/2 preface and SETTINGS in time")

    def _handshake_done(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(self.limits.idle_timeout, self._idle_check)

    def _idle_check(self) -> None:
        """GOAWAY a connection that has had no open stream for an idle timeout (and at most two)."""
        if self.transport is None:
            return
        if self.streams or self.active:
            self.active = False
            self.timer = self.loop.call_later(self.limits.idle_timeout, self._idle_check)
            return
        self.timer = None
        self.shutdown()

    # --- calls -----------------------------------------------------------------------------------------
    async def _unary(self, stream: _Stream) -> None:
        rpc = stream.rpc
        assert rpc is not None
        request = self._parse(rpc, _single_message(stream.body, self.server.max_message_bytes))
        call = rpc.handler(request, stream.metadata)
        timeout = stream.metadata.get(b"grpc-timeout")
        response = await (_with_deadline(call, timeout) if timeout else call)  # type: ignore[arg-type]
        self._answer_unary(stream, response if isinstance(response, bytes) else response.SerializeToString())

    async def _streaming(self, stream: _Stream) -> None:
        rpc, queue = stream.rpc, stream.messages
        assert rpc is not None and queue is not None

        async def requests() -> AsyncIterator[Any]:
            while (data := await queue.get()) is not None:
                self._let_go(stream, len(data) + 5)
                yield self._parse(rpc, data)

        async for response in rpc.handler(requests(), stream.metadata):  # type: ignore[attr-defined]
            self._send_message(stream, response)
            if stream.outbox or self.write_paused:  # the client is not reading: wait before making more
                await self._drained(stream)

    async def _drained(self, stream: _Stream) -> None:
        stream.waiter = self.loop.create_future()
        try:
            await stream.waiter
        finally:
            stream.waiter = None

    def _wake(self, stream: _Stream) -> None:
        if stream.waiter is not None and not stream.waiter.done() and not stream.outbox and not self.write_paused:
            stream.waiter.set_result(None)

    def _call(self, stream: _Stream, rpc: Rpc) -> None:
        """Start a callback call (see ``Rpc``), with a timer for its ``grpc-timeout``."""
        try:
            request = self._parse(rpc, _single_message(stream.body, self.server.max_message_bytes))
            stream.task = rpc.handler(request, stream.metadata, functools.partial(self._reply, stream))
        except Exception as exc:
            self._fail_with(stream, exc)
            return
        timeout = stream.metadata.get(b"grpc-timeout")
        seconds = parse_timeout(timeout) if timeout else None
        if seconds is not None and not stream.closed:
            stream.timer = self.loop.call_later(seconds, self._expire, stream)

    def _reply(self, stream: _Stream, outcome: bytes | BaseException) -> None:
        if isinstance(outcome, bytes):
            self._answer_unary(stream, outcome)
        else:
            self._fail_with(stream, outcome)

    def _expire(self, stream: _Stream) -> None:
        if stream.task is not None:
            stream.task.cancel()
        self._fail_with(stream, RequestTimeoutError("deadline exceeded"))

    async def _run(self, stream: _Stream, answer: Awaitable[None]) -> None:
        """Run a call; end its stream with OK trailers, or with the status its error maps to."""
        try:
            await answer
        except (Exception, asyncio.CancelledError) as exc:
            self._fail_with(stream, exc)
        else:
            self._send_trailers(stream, _OK_TRAILERS)

    def _fail_with(self, stream: _Stream, exc: BaseException) -> None:
        """End a call with the status its error maps to: never a traceback to the client."""
        if isinstance(exc, _CallError):
            self._fail(stream, exc.code, exc.message)
        elif isinstance(exc, OarError):
            self._fail(stream, self.server.status_of(exc), str(exc))
        elif not isinstance(exc, asyncio.CancelledError):  # cancelled: the client is gone, nobody to answer
            log.error("unhandled error in gRPC call", exc_info=exc)
            self._fail(stream, grpc.StatusCode.INTERNAL, "internal server error; see the server log")

    @staticmethod
    def _parse(rpc: Rpc, data: bytes) -> Any:
        try:
            return rpc.request_type.FromString(data)
        except DecodeError:
            raise _CallError(grpc.StatusCode.INVALID_ARGUMENT, "request is not a valid protobuf message") from None

    # --- output ----------------------------------------------------------------------------------------
    def _send_message(self, stream: _Stream, message: Message | bytes, flush: bool = True) -> None:
        if stream.closed:
            return
        data = message if isinstance(message, bytes) else message.SerializeToString()
        stream.outbox += _MESSAGE_PREFIX.pack(0, len(data))
        stream.outbox += data
        if flush:
            self._flush(stream)

    def _answer_unary(self, stream: _Stream, data: bytes) -> None:
        """Headers, the whole message and OK trailers in one write: the common case, without the general path."""
        size = len(data) + 5
        if stream.closed or self.transport is None:
            return
        if stream.outbox or size > min(self.peer_max_frame, self.send_window, stream.send_window):
            self._send_message(stream, data, flush=False)  # large, or the windows are short: flow control
            self._send_trailers(stream, _OK_TRAILERS)
            return
        self.send_window -= size
        stream.send_window -= size
        stream.headers_sent = True
        self._write(_unary_response(stream.id, data))
        self._finish(stream)

    def _send_trailers(self, stream: _Stream, block: bytes) -> None:
        if not stream.closed:
            stream.trailers = block
            self._flush(stream)

    def _fail(self, stream: _Stream, code: grpc.StatusCode, message: str) -> None:
        self._send_trailers(stream, status_trailers(code, message))

    def _flush(self, stream: _Stream) -> None:
        """Send what the flow-control windows allow; the trailers once every DATA byte is out."""
        if self.transport is None or stream.closed:
            return
        out: list[bytes] = []
        if stream.outbox and not stream.headers_sent:
            stream.headers_sent = True
            out.append(frame(HEADERS, END_HEADERS, stream.id, _RESPONSE_HEADERS))
        while stream.outbox and self.send_window > 0 and stream.send_window > 0:
            size = min(len(stream.outbox), self.send_window, stream.send_window, self.peer_max_frame)
            out.append(frame(DATA, 0, stream.id, bytes(stream.outbox[:size])))
            del stream.outbox[:size]
            self.send_window -= size
            stream.send_window -= size
        if not stream.outbox and stream.trailers is not None:
            block = stream.trailers if stream.headers_sent else _RESPONSE_HEADERS + stream.trailers  # trailers-only
            out.append(frame(HEADERS, END_HEADERS | END_STREAM, stream.id, block))
            self._write(b"".join(out))
            self._finish(stream)
            return
        if out:
            self._write(b"".join(out))
        self._wake(stream)

    def _flush_all(self) -> None:
        for stream in list(self.streams.values()):
            if stream.outbox or stream.trailers is not None:
                self._flush(stream)

    def _finish(self, stream: _Stream, last_frame: bytes = b"") -> None:
        if last_frame:
            self._write(last_frame)
        stream.closed = True
        if stream.timer is not None:
            stream.timer.cancel()
        if not stream.remote_closed:  # we answered before the client finished sending: stop its upload
            self._write(frame(RST_STREAM, 0, stream.id, _U32.pack(NO_ERROR)))
            self._remember_closed(stream.id, by_us=True)
        self.streams.pop(stream.id, None)
        if stream.held:
            self._let_go(stream, stream.held)
        self._close_if_idle()

    def _reset(self, stream_id: int, code: int) -> None:
        """A stream error (or a refused stream): RST_STREAM, and the stream's work stops.

        Every reset we are made to send spends a budget (CVE-2019-9514, reset flood): a refused stream the
        reset budget, a malformed request the much smaller stream-error budget, since a well-behaved client
        sends none and each costs a header-block decode.
        """
        self._write(frame(RST_STREAM, 0, stream_id, _U32.pack(code)))
        self._remember_closed(stream_id, by_us=True)
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            _cancel(stream)
            self._let_go(stream, stream.held)
            self._close_if_idle()
        if code == REFUSED_STREAM:
            self._spend(self.resets, "refused streams")
        else:
            self._spend(self.stream_errors, "stream errors")

    def _on_closed_stream(self, stream_id: int, kind: str) -> None:
        """A frame on a stream that was reset: ignored if we reset it (§5.1: it may have been in flight), a
        stream error if the client did; returns only for a stream closed normally (the caller's error)."""
        by_us = self.closed_ids.get(stream_id)
        if by_us:
            raise _Ignored
        if by_us is not None:
            raise _StreamError(stream_id, STREAM_CLOSED, f"{kind} on stream {stream_id} after the client reset it")

    def _remember_closed(self, stream_id: int, by_us: bool) -> None:
        self.closed_ids[stream_id] = by_us
        if len(self.closed_ids) > _CLOSED_IDS_KEPT:
            self.closed_ids.popitem(last=False)

    def _write(self, data: bytes) -> None:
        if self.out is not None:  # inside data_received: one write for all a read makes us send
            self.out.append(data)
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _flush_out(self) -> None:
        out, self.out = self.out, None
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def _go_away(self, code: int, reason: str) -> None:
        log.info("closing HTTP/2 connection: %s", reason)
        self._write(frame(GOAWAY, 0, 0, struct.pack(">II", self.last_stream_id, code) + reason.encode()[:200]))
        self._close()

    def _close_if_idle(self) -> None:
        if self.streams:
            return
        if self.closing:
            self._close()
        elif self.transport is not None:
            self.server.wait_on(self, answered=True)

    def _close(self) -> None:
        """Close after the last frames are flushed, or abort if the peer does not read them in time."""
        self._flush_out()
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
            self.loop.call_later(_CLOSE_GRACE, transport.abort)

    def evict(self) -> None:
        """GOAWAY and close (no stream is open): the listener makes room for other clients."""
        if self.transport is not None:
            self._go_away(NO_ERROR, "server under connection pressure")

    def shutdown(self) -> None:
        """GOAWAY: no new streams; the open ones finish; then the connection closes."""
        if not self.closing:
            self.closing = True
            self._write(frame(GOAWAY, 0, 0, struct.pack(">II", self.last_stream_id, NO_ERROR)))
        self._close_if_idle()


def _checked_head(headers: list[tuple[bytes, bytes]]) -> RequestHead | str:
    """The request's head, or why it is malformed (a message, not the exception: see ``_decode_request``)."""
    try:
        return parse_request(headers)
    except MalformedHeaders as exc:
        return str(exc)


async def _with_deadline(call: Awaitable[Message | bytes], timeout: bytes) -> Message | bytes:
    """Await ``call`` within the client's ``grpc-timeout`` (ignored when malformed)."""
    seconds = parse_timeout(timeout)
    if seconds is None:
        return await call
    try:
        return await asyncio.wait_for(call, seconds)
    except TimeoutError:
        raise RequestTimeoutError("deadline exceeded") from None


class _CallError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _cancel(stream: _Stream) -> None:
    """Stop a stream's work: the client reset it, or the connection is gone (so nothing more is sent on it)."""
    stream.closed = True
    if stream.task is not None:
        stream.task.cancel()
    if stream.timer is not None:
        stream.timer.cancel()


def _strip_padding(flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise _ConnectionError(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


def _single_message(body: bytearray, limit: int) -> bytes:
    """The one length-prefixed message of a unary request."""
    if len(body) < 5:
        raise _CallError(grpc.StatusCode.INTERNAL, "request has no complete gRPC message")
    compressed, length = _MESSAGE_PREFIX.unpack_from(body)
    if compressed:
        raise _CallError(grpc.StatusCode.UNIMPLEMENTED, "compressed messages are not supported")
    if length > limit:
        raise _CallError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"request message is over the {limit}-byte limit")
    if len(body) != 5 + length:
        raise _CallError(grpc.StatusCode.INTERNAL, "a unary request must carry exactly one whole message")
    return bytes(body[5:])


class GrpcServer(Listener):
    """``await GrpcServer(rpcs, ...).start(host, port)``; ``await server.shutdown(grace)`` drains it."""

    def __init__(
        self,
        rpcs: Mapping[str, Rpc],
        status_of: StatusOf,
        max_message_bytes: int,
        ssl_context: ssl.SSLContext | None = None,
        http2: Http2Limits | None = None,
        connection_limits: ConnectionLimits | None = None,
    ) -> None:
        super().__init__(ssl_context, connection_limits)  # ``self.limits``: the socket-level limits of both ports
        self.rpcs = dict(rpcs)
        self.status_of = status_of
        self.max_message_bytes = max_message_bytes
        self.http2 = http2 or Http2Limits()
        self.receive_window = min(self.http2.effective_window(max_message_bytes), MAX_WINDOW)

    def too_large_message(self) -> str:
        return f"request message is over the {self.max_message_bytes}-byte limit"

    def new_connection(self) -> GrpcProtocol:
        return GrpcProtocol(self)
