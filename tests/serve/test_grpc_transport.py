"""oar's HTTP/2 transport for gRPC, at the frame level and with messages larger than the flow-control windows.

Raw sockets speak HTTP/2 to a real ``oar serve`` (frames built by hand, headers with the ``hpack`` encoder);
grpcio's client checks that large requests and responses get through the windows in both directions.
"""

from __future__ import annotations

import signal
import socket
import struct
import time
from collections.abc import Iterator

import grpc
import hpack
import httpx
import numpy as np
import pytest

from oar.protocol import grpc_service_pb2 as pb
from oar.protocol import grpc_service_pb2_grpc as pb_grpc
from oar.protocol.raw import from_raw, to_raw
from oar.serve.grpc_server import (
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    frame,
    parse_timeout,
)
from oar.serve.process import ServerProcess

from .conftest import INFERENCE_TOKEN, QUEUE_DELAY_S, metric_samples

INFER_PATH = b"/inference.GRPCInferenceService/ModelInfer"


class RawConnection:
    """A bare HTTP/2 client: send frames, read frames, decode header blocks."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buffer = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()

    def handshake(self) -> None:
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))

    def request(
        self,
        stream_id: int,
        path: bytes,
        body: bytes,
        content_type: bytes = b"application/grpc",
        metadata: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path),
            (b":authority", b"localhost"),
            (b"content-type", content_type),
            (b"te", b"trailers"),
            *(metadata or []),
        ]
        block = self.encoder.encode(headers)
        self.sock.sendall(frame(HEADERS, END_HEADERS, stream_id, block) + frame(DATA, END_STREAM, stream_id, body))

    def read_frame(self) -> tuple[int, int, int, bytes]:
        while True:
            if len(self.buffer) >= 9:
                high, low, kind, flags, stream_id = struct.unpack(">HBBBI", self.buffer[:9])
                size = (high << 8) | low
                if len(self.buffer) >= 9 + size:
                    payload, self.buffer = self.buffer[9 : 9 + size], self.buffer[9 + size :]
                    return kind, flags, stream_id, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk

    def frames_until(self, kind: int, stream_id: int | None = None) -> list[tuple[int, int, int, bytes]]:
        seen = []
        while True:
            seen.append(self.read_frame())
            if seen[-1][0] == kind and (stream_id is None or seen[-1][2] == stream_id):
                return seen

    def response_headers(self, stream_id: int) -> dict[bytes, bytes]:
        """Every header and trailer of ``stream_id``, read until its END_STREAM."""
        headers: dict[bytes, bytes] = {}
        while True:
            kind, flags, sid, payload = self.read_frame()
            if sid != stream_id:
                continue
            if kind == HEADERS:
                headers.update(self.decoder.decode(payload, raw=True))
            if flags & END_STREAM:
                return headers

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(full_server) -> Iterator[RawConnection]:
    connection = RawConnection(full_server.grpc_address)
    connection.handshake()
    yield connection
    connection.close()


def _message(request: pb.ModelInferRequest) -> bytes:
    data = request.SerializeToString()
    return struct.pack(">BI", 0, len(data)) + data


def _numeric_request(rows: int) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="num-fp32")
    message.inputs.add(name="x", datatype="FP32", shape=[rows, 4])
    message.raw_input_contents.append(to_raw(np.ones((rows, 4), dtype=np.float32), "FP32"))
    return message


def test_the_server_answers_settings_and_ping(raw) -> None:
    kinds = [f[0] for f in raw.frames_until(SETTINGS)]
    assert SETTINGS in kinds
    raw.sock.sendall(frame(PING, 0, 0, b"12345678"))
    ping = raw.frames_until(PING)[-1]
    assert ping[1] & 0x1 and ping[3] == b"12345678"  # ACK with the same payload


def test_an_unknown_method_is_unimplemented_and_the_connection_stays_usable(raw) -> None:
    raw.request(1, b"/inference.GRPCInferenceService/NoSuchMethod", _message(_numeric_request(2)))
    headers = raw.response_headers(1)
    assert headers[b"grpc-status"] == b"12" and b"NoSuchMethod" in headers[b"grpc-message"]
    raw.request(3, INFER_PATH, _message(_numeric_request(2)))
    assert raw.response_headers(3)[b"grpc-status"] == b"0"


def test_a_non_grpc_content_type_gets_415(raw) -> None:
    raw.request(1, INFER_PATH, b"{}", content_type=b"application/json")
    assert raw.response_headers(1)[b":status"] == b"415"


def test_a_body_that_is_not_one_whole_message_is_an_error_not_a_crash(raw) -> None:
    raw.request(1, INFER_PATH, b"\x00\x00\x00\x00\x09abc")  # says 9 bytes, carries 3
    assert raw.response_headers(1)[b"grpc-status"] == b"13"
    raw.request(3, INFER_PATH, b"\x00\x00\x00\x00\x03\xff\xff\xff")  # not protobuf
    headers = raw.response_headers(3)
    assert headers[b"grpc-status"] == b"3" and b"protobuf" in headers[b"grpc-message"]


def test_garbage_instead_of_the_preface_gets_goaway_and_a_close(full_server) -> None:
    connection = RawConnection(full_server.grpc_address)
    try:
        connection.sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        kinds = [f[0] for f in connection.frames_until(GOAWAY)]
        assert kinds[-1] == GOAWAY
        with pytest.raises(ConnectionError):
            connection.read_frame()
    finally:
        connection.close()
    with grpc.insecure_channel(full_server.grpc_address) as channel:  # and the server still serves
        assert pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=10).live


AUTHORIZED = [(b"authorization", b"Bearer " + INFERENCE_TOKEN.encode())]


def test_a_grpc_timeout_shorter_than_the_queue_is_answered_deadline_exceeded_on_time(constrained) -> None:
    raw = RawConnection(constrained.grpc_address)  # the constrained server holds each batch QUEUE_DELAY_S
    cancelled = _cancelled_count(constrained.endpoint)  # (the server is shared by the session's tests)
    try:
        raw.handshake()
        started = time.monotonic()
        raw.request(1, INFER_PATH, _message(_numeric_request(2)), metadata=[*AUTHORIZED, (b"grpc-timeout", b"100m")])
        headers = raw.response_headers(1)
        assert headers[b"grpc-status"] == b"4"  # DEADLINE_EXCEEDED, from the server: the client does not enforce it
        assert time.monotonic() - started < QUEUE_DELAY_S - 0.1
        time.sleep(QUEUE_DELAY_S)  # the dropped request leaves the one-place queue at the next dispatch
        raw.request(3, INFER_PATH, _message(_numeric_request(2)), metadata=AUTHORIZED)
        assert raw.response_headers(3)[b"grpc-status"] == b"0"
    finally:
        raw.close()
    assert _cancelled_count(constrained.endpoint) == cancelled + 1


def test_a_reset_stream_is_dropped_from_the_queue_and_gets_no_answer(constrained) -> None:
    raw = RawConnection(constrained.grpc_address)
    cancelled = _cancelled_count(constrained.endpoint)
    try:
        raw.handshake()
        raw.request(1, INFER_PATH, _message(_numeric_request(2)), metadata=AUTHORIZED)
        time.sleep(QUEUE_DELAY_S / 4)  # queued, held back
        raw.sock.sendall(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))  # CANCEL
        time.sleep(QUEUE_DELAY_S)
        raw.request(3, INFER_PATH, _message(_numeric_request(2)), metadata=AUTHORIZED)
        answered = [f[2] for f in raw.frames_until(HEADERS, stream_id=3) if f[0] in (HEADERS, DATA)]
        assert 1 not in answered
        assert raw.response_headers(3)[b"grpc-status"] == b"0"
    finally:
        raw.close()
    assert _cancelled_count(constrained.endpoint) == cancelled + 1


def _cancelled_count(endpoint: str) -> float:
    text = httpx.get(f"{endpoint}/metrics", timeout=10).text
    return sum(metric_samples(text, "oar_inference_requests_total", outcome="cancelled"))


@pytest.fixture(scope="module")
def roomy_server(numeric_models) -> Iterator[ServerProcess]:
    args = ["--max-batch-size", "2000000", "--max-body-bytes", str(8 << 20)]
    with ServerProcess(["num-fp32:1"], extra_args=args) as server:
        yield server


def test_messages_larger_than_the_windows_flow_both_ways(roomy_server) -> None:
    rows = 60_000  # 960 KB in, 720 KB out: many DATA frames and window updates in each direction
    with grpc.insecure_channel(roomy_server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        answers = [stub.ModelInfer(_numeric_request(rows), timeout=30) for _ in range(3)]
    for answer in answers:
        output = from_raw(answer.raw_output_contents[0], "FP32", list(answer.outputs[0].shape), "output")
        assert output.shape == (rows, 3)
        np.testing.assert_allclose(output, np.broadcast_to(output[0], output.shape))


def test_a_message_larger_than_the_whole_receive_window_gets_window_updates(numeric_models) -> None:
    rows = 1_200_000  # 19.2 MB in: more than the 16 MiB stream and connection windows the server opens with
    args = ["--max-batch-size", str(rows), "--max-body-bytes", str(32 << 20)]
    options = [("grpc.max_receive_message_length", 32 << 20), ("grpc.max_send_message_length", 32 << 20)]
    with (
        ServerProcess(["num-fp32:1"], extra_args=args) as server,
        grpc.insecure_channel(server.grpc_address, options=options) as channel,
    ):
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_numeric_request(rows), timeout=60)
    assert list(answer.outputs[0].shape) == [rows, 3]


def test_a_message_over_the_limit_is_refused_mid_upload(roomy_server) -> None:
    with grpc.insecure_channel(roomy_server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(_numeric_request(600_000), timeout=30)  # 9.6 MB > 8 MiB
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.ModelInfer(_numeric_request(2), timeout=10).outputs[0].shape == [2, 3]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"100m", 0.1), (b"2S", 2.0), (b"1H", 3600.0), (b"5u", 5e-6), (b"", None), (b"10x", None), (b"m", None)],
)
def test_grpc_timeout_header_values(value, seconds) -> None:
    assert parse_timeout(value) == (pytest.approx(seconds) if seconds else None)


def test_sigterm_lets_an_in_flight_grpc_call_finish_then_refuses_new_ones(numeric_models) -> None:
    args = ["--max-queue-delay-us", str(int(QUEUE_DELAY_S * 1e6))]  # each batch is held this long: in flight
    with (
        ServerProcess(["num-fp32:1"], extra_args=args) as server,
        grpc.insecure_channel(server.grpc_address) as channel,
    ):
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stub.ServerLive(pb.ServerLiveRequest(), timeout=10)  # connected before the signal
        in_flight = stub.ModelInfer.future(_numeric_request(2), timeout=15)
        time.sleep(QUEUE_DELAY_S / 3)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert list(in_flight.result().outputs[0].shape) == [2, 3]  # drained, not dropped
        assert server.process.wait(15) == 0
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(_numeric_request(2), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_every_rpc_of_the_service_is_routed_with_its_streaming_shape() -> None:
    from oar.serve.grpc_app import SERVICE, InferenceService

    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    routed = InferenceService(dataplane=None).rpcs()  # type: ignore[arg-type]
    assert set(routed) == {SERVICE + m.name for m in service.methods}
    for method in service.methods:
        rpc = routed[SERVICE + method.name]
        assert rpc.streaming == (method.client_streaming and method.server_streaming), method.name
        assert rpc.request_type.DESCRIPTOR.full_name == method.input_type.full_name, method.name


def test_the_packed_unary_response_is_headers_data_and_ok_trailers() -> None:
    from oar.serve.grpc_server import _OK_TRAILERS, _RESPONSE_HEADERS, _unary_response

    message = b"\x0a\x03abc" * 14_000  # 70 kB: over 16 bits, so the 24-bit frame size must carry it
    expected = (
        frame(HEADERS, END_HEADERS, 7, _RESPONSE_HEADERS)
        + frame(DATA, 0, 7, struct.pack(">BI", 0, len(message)) + message)
        + frame(HEADERS, END_HEADERS | END_STREAM, 7, _OK_TRAILERS)
    )
    assert _unary_response(7, message) == expected
