"""Hostile HTTP/2 clients against a real ``oar serve``: every flood gets GOAWAY, and nobody else notices.

Each flood (``h2_floods.py``, its own process) runs while a well-behaved gRPC client and a well-behaved
REST client keep calling the same server; their p99 must stay under 50 ms with no failure, and the
server's resident memory within a stated bound. The flood process runs at the lowest CPU priority, so
that on one small machine its own CPU use does not stand in for the server's. ``OAR_H2_FLOOD_SECONDS``
sets how long each flood runs (2 s in the suite; ``OAR_H2_FLOOD_SECONDS=30`` for the figures in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from oar.protocol import grpc_service_pb2 as pb
from oar.protocol import grpc_service_pb2_grpc as pb_grpc
from oar.protocol.raw import to_raw
from oar.serve.http2_limits import Http2Limits
from oar.serve.process import ServerProcess

from .h2_client import DATA, END_HEADERS, GOAWAY, HEADERS, SETTINGS, WINDOW_UPDATE, Closed, H2Client, frame
from .h2_floods import request_headers

pytestmark = pytest.mark.slow

FLOODS = Path(__file__).with_name("h2_floods.py")
FLOOD_SECONDS = float(os.environ.get("OAR_H2_FLOOD_SECONDS", "2"))
P99_BOUND_S = 0.050
STALL_S = 0.5  # no call of a well-behaved client waits this long during any flood
RSS_BOUND = 64 << 20  # growth over the idle server's RSS, during and after any one flood
IDLE_TIMEOUT = 2.0
HANDSHAKE_TIMEOUT = 1.0
LIMITS = Http2Limits()
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 3, 4, 6
ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, REFUSED_STREAM, SETTINGS_TIMEOUT, NO_ERROR = 11, 3, 7, 4, 0


@pytest.fixture(scope="module")
def server(numeric_models) -> Iterator[ServerProcess]:
    args = ["--h2-idle-timeout", str(IDLE_TIMEOUT), "--h2-handshake-timeout", str(HANDSHAKE_TIMEOUT)]
    with ServerProcess(["num-fp32:1"], extra_args=args) as process:
        yield process


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclass
class Probe:
    """Well-behaved clients calling ModelInfer over gRPC and REST in turn, timing each call."""

    server: ServerProcess
    grpc_latencies: list[float] = field(default_factory=list)
    rest_latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    peak_rss: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        request = pb.ModelInferRequest(model_name="num-fp32")
        request.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(to_raw(np.ones((1, 4), dtype=np.float32), "FP32"))
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 1.0, 1.0, 1.0]}]}
        url = f"{self.server.endpoint}/v2/models/num-fp32/infer"
        with grpc.insecure_channel(self.server.grpc_address) as channel, httpx.Client(timeout=2.0) as rest:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            while not self.stop.is_set():
                self._timed(self.grpc_latencies, lambda: stub.ModelInfer(request, timeout=2.0))
                self._timed(self.rest_latencies, lambda: rest.post(url, json=body).raise_for_status())
                self.peak_rss = max(self.peak_rss, rss(self.server.process.pid))
                time.sleep(0.005)

    def _timed(self, latencies: list[float], call) -> None:
        start = time.perf_counter()
        try:
            call()
        except Exception as exc:  # any failure of a well-behaved client is what the test is about
            said = exc.details() if isinstance(exc, grpc.RpcError) else str(exc)  # type: ignore[attr-defined]
            if isinstance(exc, httpx.HTTPStatusError):
                said += f": {exc.response.text}"
            self.failures.append(f"{type(exc).__name__}: {said[:300]}")
            return
        latencies.append(time.perf_counter() - start)


def p99(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 99))


def run_flood(server: ServerProcess, kind: str, seconds: float, *extra: str) -> tuple[dict, Probe, int]:
    """The flood's report, the probe that ran alongside it, and the server's idle RSS before."""
    probe = Probe(server)
    thread = threading.Thread(target=probe.run, daemon=True)
    thread.start()
    time.sleep(0.5)  # the probe's connections are up and warm
    probe.grpc_latencies.clear()
    probe.rest_latencies.clear()
    before = rss(server.process.pid)
    # At the lowest CPU priority: on a real network the attacker's CPU is its own, not the server's.
    command = ["nice", "-n", "19", sys.executable, str(FLOODS), kind, server.grpc_address, "--seconds", str(seconds)]
    command += extra
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
    time.sleep(0.3)  # and just after it
    probe.stop.set()
    thread.join(timeout=10)
    return json.loads(done.stdout), probe, before


def check_others_unharmed(probe: Probe, before: int, server: ServerProcess) -> None:
    """Every call of the well-behaved clients answered, their p99 under the bound, none stalled."""
    print(  # the figures of the run (pytest -s shows them)
        f"gRPC p99 {p99(probe.grpc_latencies) * 1e3:.1f} ms ({len(probe.grpc_latencies)} calls), "
        f"REST p99 {p99(probe.rest_latencies) * 1e3:.1f} ms ({len(probe.rest_latencies)} calls), "
        f"failures {len(probe.failures)}, peak RSS +{(probe.peak_rss - before) / (1 << 20):.1f} MiB"
    )
    assert not probe.failures, probe.failures[:5]
    assert len(probe.grpc_latencies) > 20 and len(probe.rest_latencies) > 20
    for name, latencies in (("gRPC", probe.grpc_latencies), ("REST", probe.rest_latencies)):
        assert p99(latencies) < P99_BOUND_S, f"{name} p99 {p99(latencies) * 1e3:.1f} ms"
        assert max(latencies) < STALL_S, f"{name} stalled {max(latencies) * 1e3:.0f} ms"
    assert probe.peak_rss - before < RSS_BOUND, f"RSS grew {(probe.peak_rss - before) >> 20} MiB during the flood"
    assert rss(server.process.pid) - before < RSS_BOUND


CALM_FLOODS = [
    "rapid_reset",
    "ping",
    "settings",
    "empty_data",
    "continuation",
    "empty_continuation",
    "priority",
    "reset_flood",
    "window_dribble",
    "unknown_frames",
]


@pytest.mark.timeout(300 + 2 * FLOOD_SECONDS)
@pytest.mark.parametrize("kind", CALM_FLOODS)
def test_a_flood_gets_enhance_your_calm_and_other_clients_do_not_notice(server, kind) -> None:
    report, probe, before = run_flood(server, kind, FLOOD_SECONDS)
    print(f"\n{kind}: {report}")
    assert report.get("goaway_ENHANCE_YOUR_CALM", 0) >= 1, report
    assert report.get("goaway_ENHANCE_YOUR_CALM", 0) >= report["connections"] // 4, report  # not a fluke
    check_others_unharmed(probe, before, server)


@pytest.mark.timeout(300 + 2 * FLOOD_SECONDS)
def test_data_beyond_the_advertised_window_is_a_flow_control_error_and_buffers_nothing(server) -> None:
    report, probe, before = run_flood(server, "big_bodies", FLOOD_SECONDS)
    assert report.get("goaway_FLOW_CONTROL_ERROR", 0) >= 1, report
    check_others_unharmed(probe, before, server)


@pytest.mark.timeout(300 + 2 * FLOOD_SECONDS)
def test_a_peer_that_never_reads_its_replies_stops_being_read(server) -> None:
    report, probe, before = run_flood(server, "slow_reader", FLOOD_SECONDS, "--no-read")
    # What one connection gets to send is its window and what the kernel's socket buffers hold, then it is
    # no longer read (or, having opened streams past the limit, closed with GOAWAY).
    assert 0 < report["bytes_sent"] < report["connections"] * (64 << 20), report
    check_others_unharmed(probe, before, server)


@pytest.mark.timeout(300 + 2 * FLOOD_SECONDS)
def test_a_peer_whose_every_call_is_refused_gets_no_more_than_its_turn(server) -> None:
    """Refusing a call costs the server more than reading it: the turn's clock counts it, or others would wait."""
    report, probe, before = run_flood(server, "refused_calls", FLOOD_SECONDS)
    assert report["bytes_sent"] > 1 << 20, report
    check_others_unharmed(probe, before, server)


@pytest.mark.timeout(180)
def test_buffered_request_bytes_are_not_given_back_until_the_call_ends(server) -> None:
    """Each connection may hold at most the window it was told about: four such hold 4 x 8 MiB, no more."""
    holders = []
    before = rss(server.process.pid)
    window = H2Client(server.grpc_address)
    window.handshake()
    advertised = window.server_settings[SETTINGS_INITIAL_WINDOW_SIZE]
    window.close()
    assert advertised == LIMITS.effective_window(4 * 1024 * 1024)
    for _ in range(4):
        client = H2Client(server.grpc_address)
        client.handshake()
        chunk = b"\0" * 16_384
        for stream_id in (1, 3):  # two unfinished 4,000,000-byte messages, within the window
            client.headers(stream_id)
            client.send(frame(DATA, 0, stream_id, b"\0\x00\x3d\x09\x00" + chunk[:16_379]))
            for _ in range((advertised // 2 - 16_384) // 16_384 - 2):
                client.send(frame(DATA, 0, stream_id, chunk))
        holders.append(client)
    opening = (advertised - 65_535).to_bytes(4, "big")  # the update that opens the window, sent with SETTINGS
    for client in holders:
        updates = [f for f in client.frames(0.5) if f[0] == WINDOW_UPDATE and f[2] == 0 and f[3] != opening]
        assert not updates, "the connection window came back while its bytes are still buffered"
    assert rss(server.process.pid) - before < 4 * advertised + (32 << 20)
    client = holders[0]
    client.headers(5)
    client.send(frame(DATA, 0, 5, b"\0" * 16_384) * 8)  # past the connection window
    _, code, _ = client.goaway()
    assert code == FLOW_CONTROL_ERROR
    for client in holders:
        client.close()


@pytest.mark.timeout(180)
def test_streams_beyond_the_advertised_cap_are_refused(server) -> None:
    client = H2Client(server.grpc_address)
    client.handshake()
    cap = client.server_settings[SETTINGS_MAX_CONCURRENT_STREAMS]
    assert cap == LIMITS.max_concurrent_streams
    for index in range(cap):
        client.headers(2 * index + 1)  # open, never finished
    client.headers(2 * cap + 1)
    assert client.reset_of(2 * cap + 1) == REFUSED_STREAM
    client.close()


@pytest.mark.timeout(180)
def test_a_header_list_over_the_advertised_size_gets_enhance_your_calm(server) -> None:
    client = H2Client(server.grpc_address)
    client.handshake()
    limit = client.server_settings[SETTINGS_MAX_HEADER_LIST_SIZE]
    assert limit == LIMITS.max_header_list_size
    client.headers(1, request_headers(extra=[(b"x-big", b"v" * (limit + 1))]))
    _, code, _ = client.goaway()
    assert code == ENHANCE_YOUR_CALM
    client.close()


@pytest.mark.timeout(180)
def test_a_header_list_is_limited_across_continuation_frames(server) -> None:
    from .h2_client import CONTINUATION

    client = H2Client(server.grpc_address)
    client.handshake()
    block = client.encoder.encode(request_headers(extra=[(b"x-big", b"v" * 12_000), (b"x-more", b"w" * 12_000)]))
    pieces = [block[i : i + 8000] for i in range(0, len(block), 8000)]
    client.send(frame(HEADERS, 0, 1, pieces[0]))
    for index, piece in enumerate(pieces[1:], start=1):
        client.send(frame(CONTINUATION, END_HEADERS if index == len(pieces) - 1 else 0, 1, piece))
    _, code, _ = client.goaway()
    assert code == ENHANCE_YOUR_CALM
    client.close()


@pytest.mark.timeout(180)
def test_a_connection_that_never_sends_the_preface_is_closed(server) -> None:
    client = H2Client(server.grpc_address)
    start = time.monotonic()
    _, code, _ = client.goaway(timeout=HANDSHAKE_TIMEOUT + 3)  # after the server's own SETTINGS
    assert code == SETTINGS_TIMEOUT
    with pytest.raises(Closed):
        client.read_frame(timeout=2)
    assert time.monotonic() - start < HANDSHAKE_TIMEOUT + 3
    client.close()


@pytest.mark.timeout(180)
def test_a_connection_with_the_preface_but_no_settings_gets_settings_timeout(server) -> None:
    client = H2Client(server.grpc_address)
    client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    _, code, _ = client.goaway(timeout=HANDSHAKE_TIMEOUT + 3)
    assert code == SETTINGS_TIMEOUT
    client.close()


@pytest.mark.timeout(180)
def test_an_idle_connection_gets_goaway_no_error_and_pings_do_not_keep_it(server) -> None:
    client = H2Client(server.grpc_address)
    client.handshake()
    client.call(1)
    assert client.response(1)[b"grpc-status"] == b"0"
    start = time.monotonic()
    deadline = start + 3 * IDLE_TIMEOUT + 2
    code = None
    while time.monotonic() < deadline and code is None:
        client.send(frame(6, 0, 0, b"keepaliv"))  # a PING now and then is not activity
        for kind, _, _, payload in client.frames(0.5):
            if kind == GOAWAY:
                code = int.from_bytes(payload[4:8], "big")
    assert code == NO_ERROR
    assert IDLE_TIMEOUT / 2 <= time.monotonic() - start <= 2 * IDLE_TIMEOUT + 1.5
    client.close()


@pytest.mark.timeout(180)
def test_the_server_still_answers_well_behaved_clients_after_every_flood(server) -> None:
    client = H2Client(server.grpc_address)
    client.handshake()
    client.call(1)
    assert client.response(1)[b"grpc-status"] == b"0"
    client.close()
    with httpx.Client() as rest:
        assert rest.get(f"{server.endpoint}/v2/health/ready").status_code == 200


@pytest.mark.timeout(180)
def test_settings_advertise_every_limit(server) -> None:
    client = H2Client(server.grpc_address)
    client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0))
    kind, _, _, payload = client.read_frame(timeout=5)
    assert kind == SETTINGS
    keys = {int.from_bytes(payload[i : i + 2], "big") for i in range(0, len(payload), 6)}
    assert {SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE} <= keys
    client.close()


@pytest.mark.timeout(180)
def test_at_the_connection_cap_the_longest_idle_connection_makes_room(numeric_models) -> None:
    """Connections that finished their handshake and opened no stream fill the cap: a new client is answered
    at once, the one idle longest gets GOAWAY NO_ERROR to make room, and the others keep theirs."""
    cap = 20
    with ServerProcess(["num-fp32:1"], extra_args=["--max-connections", str(cap)]) as server:
        idle = []
        for _ in range(cap):
            client = H2Client(server.grpc_address)
            client.handshake()
            idle.append(client)
        time.sleep(0.3)  # all of them established and counted
        started = time.monotonic()
        newcomer = H2Client(server.grpc_address)
        newcomer.handshake()
        newcomer.call(1)
        assert newcomer.response(1)[b"grpc-status"] == b"0"
        waited = time.monotonic() - started
        _, code, _ = idle[0].goaway(timeout=2.0)
        idle[1].call(1)
        assert idle[1].response(1)[b"grpc-status"] == b"0"
        for client in [*idle, newcomer]:
            client.close()
    assert code == NO_ERROR
    assert waited < 1.0, waited
