"""A bare HTTP/2 client for the transport's adversarial and conformance tests: raw frames in, raw frames out.

It does only what a test tells it: no automatic ACKs, window updates or error handling, so a test can
send exactly the frame sequence an RFC 9113 rule is about and read exactly what the server answers.
"""

from __future__ import annotations

import socket
import struct
import time

import hpack

from .h2_floods import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ERRORS,
    GOAWAY,
    HEADERS,
    PING,
    PREFACE,
    PRIORITY,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    frame,
    infer_message,
    request_headers,
)

__all__ = [
    "CONTINUATION",
    "DATA",
    "END_HEADERS",
    "END_STREAM",
    "ERRORS",
    "GOAWAY",
    "HEADERS",
    "PING",
    "PRIORITY",
    "RST_STREAM",
    "SETTINGS",
    "WINDOW_UPDATE",
    "Closed",
    "H2Client",
    "frame",
    "infer_message",
    "request_headers",
]

Frame = tuple[int, int, int, bytes]  # type, flags, stream id, payload


class Closed(Exception):
    """The server closed the connection; ``frames`` holds what it sent before."""


class H2Client:
    def __init__(self, address: str, timeout: float = 5.0) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buffer = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.server_settings: dict[int, int] = {}

    def handshake(self) -> None:
        """Preface and empty SETTINGS; read the server's SETTINGS and ACK it."""
        self.send(PREFACE + frame(SETTINGS, 0, 0))
        kind, flags, _, payload = self.read_frame()
        assert kind == SETTINGS and not flags & 1, "the server's first frame must be SETTINGS"
        for offset in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, offset)
            self.server_settings[key] = value
        self.send(frame(SETTINGS, 1, 0))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def headers(self, stream_id: int, headers: list | None = None, end_stream: bool = False) -> None:
        block = self.encoder.encode(headers if headers is not None else request_headers())
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream_id, block))

    def call(self, stream_id: int, rows: int = 1) -> None:
        """A whole ModelInfer request on ``stream_id``."""
        self.headers(stream_id)
        self.send(frame(DATA, END_STREAM, stream_id, infer_message(rows)))

    def read_frame(self, timeout: float | None = None) -> Frame:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 9:
                high, low, kind, flags, stream_id = struct.unpack(">HBBBI", self.buffer[:9])
                size = (high << 8) | low
                if len(self.buffer) >= 9 + size:
                    payload, self.buffer = self.buffer[9 : 9 + size], self.buffer[9 + size :]
                    return kind, flags, stream_id & 0x7FFFFFFF, payload
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no frame in time")
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                raise Closed("server closed the connection")
            self.buffer += chunk

    def frames(self, seconds: float) -> list[Frame]:
        """Every frame that arrives within ``seconds`` (stops early if the server closes)."""
        seen, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                seen.append(self.read_frame(timeout=left))
            except (TimeoutError, Closed):
                break
        return seen

    def goaway(self, timeout: float = 5.0) -> tuple[int, int, bytes]:
        """Read until GOAWAY: (last stream id, error code, debug data). Fails if none comes."""
        deadline = time.monotonic() + timeout
        while True:
            kind, _, _, payload = self.read_frame(timeout=max(0.01, deadline - time.monotonic()))
            if kind == GOAWAY:
                last, code = struct.unpack(">II", payload[:8])
                return last & 0x7FFFFFFF, code, payload[8:]

    def reset_of(self, stream_id: int, timeout: float = 5.0) -> int:
        """Read until RST_STREAM on ``stream_id``: its error code (a GOAWAY first fails the test)."""
        deadline = time.monotonic() + timeout
        while True:
            kind, _, sid, payload = self.read_frame(timeout=max(0.01, deadline - time.monotonic()))
            if kind == RST_STREAM and sid == stream_id:
                return struct.unpack(">I", payload)[0]
            if kind == GOAWAY:
                raise AssertionError(f"GOAWAY {ERRORS.get(struct.unpack('>I', payload[4:8])[0])}: {payload[8:]!r}")

    def response(self, stream_id: int, timeout: float = 5.0) -> dict[bytes, bytes]:
        """Headers and trailers of ``stream_id`` until END_STREAM."""
        headers: dict[bytes, bytes] = {}
        deadline = time.monotonic() + timeout
        while True:
            kind, flags, sid, payload = self.read_frame(timeout=max(0.01, deadline - time.monotonic()))
            if kind == GOAWAY:
                raise AssertionError(f"GOAWAY before the response: {payload[8:]!r}")
            if sid != stream_id:
                continue
            if kind == HEADERS:
                headers.update(self.decoder.decode(payload, raw=True))
            if kind == RST_STREAM:
                raise AssertionError(f"stream {stream_id} reset with {ERRORS.get(struct.unpack('>I', payload)[0])}")
            if flags & END_STREAM:
                return headers

    def close(self) -> None:
        self.sock.close()
