"""RFC 9113 conformance of the gRPC port, case by case (§3.4, §4, §5.1, §5.4, §5.5, §6, §8.1-§8.3).

No maintained HTTP/2 conformance tester installs from the registries this project uses (h2spec ships as
a Go binary on its own release pages), so these cases follow the RFC's MUSTs directly, in the spirit of
h2spec's: each sends the frames a rule is about to a real ``oar serve`` and checks for the connection
error (GOAWAY with that code), the stream error (RST_STREAM with that code), or the answer it requires.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import pytest

from oar.serve.process import ServerProcess

from .h2_client import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ERRORS,
    GOAWAY,
    HEADERS,
    PING,
    PRIORITY,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    H2Client,
    frame,
    infer_message,
    request_headers,
)

pytestmark = pytest.mark.slow  # timeouts leave room for the first test, which also starts the server

CODES = {name: code for code, name in ERRORS.items()}
PADDED, PRIORITY_FLAG = 0x8, 0x20


@pytest.fixture(scope="module")
def server(numeric_models) -> Iterator[ServerProcess]:
    with ServerProcess(["num-fp32:1"]) as process:
        yield process


@pytest.fixture
def client(server) -> Iterator[H2Client]:
    connection = H2Client(server.grpc_address)
    connection.handshake()
    yield connection
    connection.close()


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def setting(key: int, value: int) -> bytes:
    return struct.pack(">HI", key, value)


def answered(client: H2Client, stream_id: int) -> None:
    """The server still answers a whole request on ``stream_id``."""
    client.call(stream_id)
    assert client.response(stream_id)[b"grpc-status"] == b"0"


def open_stream(client: H2Client, stream_id: int) -> None:
    client.headers(stream_id)  # no END_STREAM: the stream stays open


def finished_call(client: H2Client, stream_id: int) -> None:
    answered(client, stream_id)


# Each case: what to send after the handshake (a function of the client), and the connection error it gets.
CONNECTION_ERRORS: dict[str, tuple[Callable[[H2Client], None], str]] = {
    "4.2 DATA over SETTINGS_MAX_FRAME_SIZE": (
        lambda c: (open_stream(c, 1), c.send(frame(DATA, 0, 1, b"\0" * 16_385))),
        "FRAME_SIZE_ERROR",
    ),
    "4.3 an undecodable header block": (lambda c: c.send(frame(HEADERS, END_HEADERS, 1, b"\x80")), "COMPRESSION_ERROR"),
    "5.1 DATA on an idle stream": (lambda c: c.send(frame(DATA, 0, 1, b"x")), "PROTOCOL_ERROR"),
    "5.1 WINDOW_UPDATE on an idle stream": (lambda c: c.send(frame(WINDOW_UPDATE, 0, 1, u32(1))), "PROTOCOL_ERROR"),
    "5.1 RST_STREAM on an idle stream": (lambda c: c.send(frame(RST_STREAM, 0, 1, u32(8))), "PROTOCOL_ERROR"),
    "5.1 DATA on a stream closed normally": (
        lambda c: (finished_call(c, 1), c.send(frame(DATA, 0, 1, b"x"))),
        "STREAM_CLOSED",
    ),
    "5.1.1 HEADERS reusing a closed stream id": (lambda c: (finished_call(c, 1), c.call(1)), "PROTOCOL_ERROR"),
    "5.1.1 a stream id below the last one opened": (lambda c: (finished_call(c, 5), c.call(3)), "PROTOCOL_ERROR"),
    "5.1.1 an even stream id from the client": (lambda c: c.call(2), "PROTOCOL_ERROR"),
    "6.1 DATA on stream 0": (lambda c: c.send(frame(DATA, 0, 0, b"x")), "PROTOCOL_ERROR"),
    "6.1 padding as long as the frame": (
        lambda c: (open_stream(c, 1), c.send(frame(DATA, PADDED, 1, b"\x05abcd"))),
        "PROTOCOL_ERROR",
    ),
    "6.2 HEADERS on stream 0": (lambda c: c.send(frame(HEADERS, END_HEADERS, 0, b"\x82")), "PROTOCOL_ERROR"),
    "6.3 PRIORITY on stream 0": (lambda c: c.send(frame(PRIORITY, 0, 0, b"\0\0\0\x01\x10")), "PROTOCOL_ERROR"),
    "6.4 RST_STREAM on stream 0": (lambda c: c.send(frame(RST_STREAM, 0, 0, u32(8))), "PROTOCOL_ERROR"),
    "6.4 RST_STREAM of 3 bytes": (
        lambda c: (open_stream(c, 1), c.send(frame(RST_STREAM, 0, 1, b"\0\0\x08"))),
        "FRAME_SIZE_ERROR",
    ),
    "6.5 SETTINGS ACK with a payload": (lambda c: c.send(frame(SETTINGS, 1, 0, setting(4, 1))), "FRAME_SIZE_ERROR"),
    "6.5 SETTINGS of 5 bytes": (lambda c: c.send(frame(SETTINGS, 0, 0, b"\0\x04\0\0\0")), "FRAME_SIZE_ERROR"),
    "6.5 SETTINGS on a stream": (lambda c: c.send(frame(SETTINGS, 0, 1, setting(4, 1))), "PROTOCOL_ERROR"),
    "6.5.2 SETTINGS_ENABLE_PUSH of 2": (lambda c: c.send(frame(SETTINGS, 0, 0, setting(2, 2))), "PROTOCOL_ERROR"),
    "6.5.2 SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1": (
        lambda c: c.send(frame(SETTINGS, 0, 0, setting(4, 2**31))),
        "FLOW_CONTROL_ERROR",
    ),
    "6.5.2 SETTINGS_MAX_FRAME_SIZE under 16384": (
        lambda c: c.send(frame(SETTINGS, 0, 0, setting(5, 16_383))),
        "PROTOCOL_ERROR",
    ),
    "6.7 PING on a stream": (lambda c: c.send(frame(PING, 0, 1, b"12345678")), "PROTOCOL_ERROR"),
    "6.7 PING of 7 bytes": (lambda c: c.send(frame(PING, 0, 0, b"1234567")), "FRAME_SIZE_ERROR"),
    "6.8 GOAWAY on a stream": (lambda c: c.send(frame(GOAWAY, 0, 1, u32(0) + u32(0))), "PROTOCOL_ERROR"),
    "6.9 WINDOW_UPDATE of 3 bytes": (lambda c: c.send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01")), "FRAME_SIZE_ERROR"),
    "6.9 a zero connection WINDOW_UPDATE": (lambda c: c.send(frame(WINDOW_UPDATE, 0, 0, u32(0))), "PROTOCOL_ERROR"),
    "6.9.1 the connection window over 2^31-1": (
        lambda c: c.send(frame(WINDOW_UPDATE, 0, 0, u32(2**31 - 1))),
        "FLOW_CONTROL_ERROR",
    ),
    "6.9.2 SETTINGS_INITIAL_WINDOW_SIZE pushing an open stream's window over 2^31-1": (
        lambda c: (
            open_stream(c, 1),
            c.send(frame(WINDOW_UPDATE, 0, 1, u32(2**31 - 1 - 65_535))),
            c.send(frame(SETTINGS, 0, 0, setting(4, 65_536))),
        ),
        "FLOW_CONTROL_ERROR",
    ),
    "6.10 CONTINUATION without HEADERS": (
        lambda c: c.send(frame(CONTINUATION, END_HEADERS, 1, b"\x82")),
        "PROTOCOL_ERROR",
    ),
    "6.10 another frame inside a header block": (
        lambda c: c.send(frame(HEADERS, 0, 1, c.encoder.encode(request_headers())) + frame(PING, 0, 0, b"12345678")),
        "PROTOCOL_ERROR",
    ),
    "6.10 CONTINUATION on another stream": (
        lambda c: c.send(
            frame(HEADERS, 0, 1, c.encoder.encode(request_headers())) + frame(CONTINUATION, END_HEADERS, 3, b"")
        ),
        "PROTOCOL_ERROR",
    ),
    "8.4 PUSH_PROMISE from a client": (lambda c: c.send(frame(5, END_HEADERS, 1, u32(2) + b"\x82")), "PROTOCOL_ERROR"),
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", sorted(CONNECTION_ERRORS))
def test_connection_errors(client, case) -> None:
    send, expected = CONNECTION_ERRORS[case]
    send(client)
    _, code, debug = client.goaway()
    assert ERRORS.get(code) == expected, f"{case}: GOAWAY {ERRORS.get(code, code)} ({debug!r})"


def _headers_with(*extra: tuple[bytes, bytes]) -> list:
    return request_headers(extra=list(extra))


def _without(name: bytes) -> list:
    return [(n, v) for n, v in request_headers() if n != name]


def _send_block(headers: list, end_stream: bool = True) -> Callable[[H2Client], None]:
    return lambda c: c.headers(1, headers, end_stream=end_stream)


def _trailers(trailers: list, end_stream: bool = True) -> Callable[[H2Client], None]:
    def send(c: H2Client) -> None:
        c.headers(1)
        c.send(frame(DATA, 0, 1, infer_message()))
        c.headers(1, trailers, end_stream=end_stream)

    return send


# Each case: what to send on stream 1, and the stream error (RST_STREAM code) it gets; the connection lives on.
STREAM_ERRORS: dict[str, tuple[Callable[[H2Client], None], str]] = {
    "5.1 DATA on a half-closed (remote) stream": (
        lambda c: c.send(
            frame(HEADERS, END_HEADERS | END_STREAM, 1, c.encoder.encode(request_headers()))
            + frame(DATA, END_STREAM, 1, infer_message())
        ),
        "STREAM_CLOSED",
    ),
    "5.1 DATA after the client reset the stream": (
        lambda c: (open_stream(c, 1), c.send(frame(RST_STREAM, 0, 1, u32(8)) + frame(DATA, 0, 1, b"x"))),
        "STREAM_CLOSED",
    ),
    "5.3 HEADERS depending on its own stream": (
        lambda c: c.send(
            frame(
                HEADERS,
                END_HEADERS | END_STREAM | PRIORITY_FLAG,
                1,
                u32(1) + b"\x10" + c.encoder.encode(request_headers()),
            )
        ),
        "PROTOCOL_ERROR",
    ),
    "5.3.1 HEADERS split over CONTINUATION depending on its own stream": (
        lambda c: c.send(
            frame(HEADERS, END_STREAM | PRIORITY_FLAG, 1, u32(1) + b"\x10" + c.encoder.encode(request_headers()))
            + frame(CONTINUATION, END_HEADERS, 1, b"")
        ),
        "PROTOCOL_ERROR",
    ),
    "5.3.1 PRIORITY making an idle stream depend on itself": (
        lambda c: c.send(frame(PRIORITY, 0, 1, u32(1) + b"\x10")),
        "PROTOCOL_ERROR",
    ),
    "5.3.1 PRIORITY making an open stream depend on itself": (
        lambda c: (open_stream(c, 1), c.send(frame(PRIORITY, 0, 1, u32(0x80000001) + b"\x10"))),
        "PROTOCOL_ERROR",
    ),
    "6.3 PRIORITY of 4 bytes": (lambda c: c.send(frame(PRIORITY, 0, 1, b"\0\0\0\x03")), "FRAME_SIZE_ERROR"),
    "6.9 a zero stream WINDOW_UPDATE": (
        lambda c: (open_stream(c, 1), c.send(frame(WINDOW_UPDATE, 0, 1, u32(0)))),
        "PROTOCOL_ERROR",
    ),
    "6.9.1 a stream window over 2^31-1": (
        lambda c: (open_stream(c, 1), c.send(frame(WINDOW_UPDATE, 0, 1, u32(2**31 - 1)))),
        "FLOW_CONTROL_ERROR",
    ),
    "8.1.1 content-length other than the body": (
        _send_block(_headers_with((b"content-length", b"3"))),
        "PROTOCOL_ERROR",
    ),
    "8.1 trailers without END_STREAM": (_trailers([(b"x-trailer", b"1")], end_stream=False), "PROTOCOL_ERROR"),
    "8.1 a pseudo-header in trailers": (_trailers([(b":path", b"/x")]), "PROTOCOL_ERROR"),
    "8.2.1 an uppercase field name": (_send_block(_headers_with((b"X-Upper", b"1"))), "PROTOCOL_ERROR"),
    "8.2.1 a field name with a space": (_send_block(_headers_with((b"x bad", b"1"))), "PROTOCOL_ERROR"),
    "8.2.1 a field value with a newline": (_send_block(_headers_with((b"x-bad", b"a\nb"))), "PROTOCOL_ERROR"),
    "8.2.1 a field value with leading whitespace": (_send_block(_headers_with((b"x-bad", b" a"))), "PROTOCOL_ERROR"),
    "8.2.1 an empty field name": (_send_block(_headers_with((b"", b"1"))), "PROTOCOL_ERROR"),
    "8.2.2 connection": (_send_block(_headers_with((b"connection", b"keep-alive"))), "PROTOCOL_ERROR"),
    "8.2.2 keep-alive": (_send_block(_headers_with((b"keep-alive", b"5"))), "PROTOCOL_ERROR"),
    "8.2.2 transfer-encoding": (_send_block(_headers_with((b"transfer-encoding", b"chunked"))), "PROTOCOL_ERROR"),
    "8.2.2 upgrade": (_send_block(_headers_with((b"upgrade", b"h2c"))), "PROTOCOL_ERROR"),
    "8.2.2 te other than trailers": (
        _send_block([(n, v) for n, v in request_headers() if n != b"te"] + [(b"te", b"gzip")]),
        "PROTOCOL_ERROR",
    ),
    "8.3 a pseudo-header after a regular field": (
        _send_block([*_without(b":authority"), (b":authority", b"localhost")]),
        "PROTOCOL_ERROR",
    ),
    "8.3 a response pseudo-header in a request": (
        _send_block([(b":status", b"200"), *request_headers()]),
        "PROTOCOL_ERROR",
    ),
    "8.3 an unknown pseudo-header": (_send_block([(b":foo", b"bar"), *request_headers()]), "PROTOCOL_ERROR"),
    "8.3.1 a request without :method": (_send_block(_without(b":method")), "PROTOCOL_ERROR"),
    "8.3.1 a request without :scheme": (_send_block(_without(b":scheme")), "PROTOCOL_ERROR"),
    "8.3.1 a request without :path": (_send_block(_without(b":path")), "PROTOCOL_ERROR"),
    "8.3.1 an empty :path": (
        _send_block([*_without(b":path")[:2], (b":path", b""), *_without(b":path")[2:]]),
        "PROTOCOL_ERROR",
    ),
    "8.3.1 :path twice": (_send_block([(b":path", b"/a"), *request_headers()]), "PROTOCOL_ERROR"),
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", sorted(STREAM_ERRORS))
def test_stream_errors_reset_the_stream_and_the_connection_goes_on(client, case) -> None:
    send, expected = STREAM_ERRORS[case]
    send(client)
    code = client.reset_of(1)
    assert ERRORS.get(code) == expected, f"{case}: RST_STREAM {ERRORS.get(code, code)}"
    answered(client, 3)


@pytest.mark.timeout(180)
def test_a_preface_that_is_not_http2_is_a_protocol_error(server) -> None:
    client = H2Client(server.grpc_address)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    _, code, _ = client.goaway()
    assert code == CODES["PROTOCOL_ERROR"]
    client.close()


@pytest.mark.timeout(180)
def test_the_preface_must_be_followed_by_settings(server) -> None:
    client = H2Client(server.grpc_address)
    client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(PING, 0, 0, b"12345678"))
    _, code, _ = client.goaway()
    assert code == CODES["PROTOCOL_ERROR"]
    client.close()


@pytest.mark.timeout(180)
def test_settings_are_acknowledged_and_unknown_settings_ignored(client) -> None:
    client.send(frame(SETTINGS, 0, 0, setting(0x99, 7) + setting(4, 1 << 20)))
    acks = [f for f in client.frames(1.0) if f[0] == SETTINGS and f[1] & 1]
    assert acks
    answered(client, 1)


@pytest.mark.timeout(180)
def test_unknown_frame_types_and_priority_frames_are_ignored(client) -> None:
    client.send(frame(0xBB, 0, 0, b"whatever") + frame(PRIORITY, 0, 9, u32(0) + b"\x10"))
    answered(client, 1)


@pytest.mark.timeout(180)
def test_a_padded_header_block_split_over_continuation_is_one_request(client) -> None:
    block = client.encoder.encode(request_headers())
    head, tail = block[:5], block[5:]
    client.send(frame(HEADERS, PADDED, 1, b"\x03" + head + b"\0\0\0"))
    client.send(frame(CONTINUATION, END_HEADERS, 1, tail))
    client.send(frame(DATA, END_STREAM | PADDED, 1, b"\x02" + infer_message() + b"\0\0"))
    assert client.response(1)[b"grpc-status"] == b"0"


@pytest.mark.timeout(180)
def test_frames_in_flight_after_the_server_reset_a_stream_are_ignored(client) -> None:
    """§5.1 closed: after sending RST_STREAM the server must ignore what the client had already sent."""
    client.headers(1, _headers_with((b"X-Upper", b"1")))  # malformed: the server resets stream 1
    assert client.reset_of(1) == CODES["PROTOCOL_ERROR"]
    client.send(frame(DATA, 0, 1, b"late") + frame(WINDOW_UPDATE, 0, 1, u32(10)))
    answered(client, 3)
    assert not [f for f in client.frames(0.3) if f[0] in (GOAWAY, RST_STREAM)]
