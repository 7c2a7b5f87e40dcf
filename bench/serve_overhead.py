"""Front-end overhead per request, REST vs gRPC, in one process: no sockets, no load generator, no noise from them.

The real ``HttpProtocol`` and ``GrpcProtocol`` are fed request bytes as if from 64 connections (one request
in flight on each, as in the closed-loop benchmark), with the real data plane, batcher and model behind
them; their answers go to an in-memory transport. Rounds alternate between the protocols. The figure is
CPU time per request minus the model's own time (tokenizer + ONNX Runtime, from the batcher's compute
metric), so it is what each protocol's front end costs: parsing, decoding, encoding, framing, dispatch.

    python bench/serve_overhead.py --home $OAR_HOME --model chnsenti-cls
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import time
from collections.abc import Callable

import hpack
import numpy as np
import orjson

TEXT = "质量太差了，用了两天就坏了，非常失望。"


class MemoryTransport(asyncio.Transport):
    """Collects what a protocol writes; counts answers by a marker each answer contains once."""

    def __init__(self, marker: bytes, on_answer: Callable[[], None]) -> None:
        super().__init__()
        self.marker = marker
        self.on_answer = on_answer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        for _ in range(bytes(data).count(self.marker)):
            self.on_answer()

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class Connections:
    """``count`` connections of one protocol, each sending the same request again when answered."""

    def __init__(self, count: int, make_protocol: Callable[[], asyncio.Protocol], marker: bytes) -> None:
        self.answered = 0
        self.target = 0
        self.done: asyncio.Event = asyncio.Event()
        self.protocols = []
        for _ in range(count):
            protocol = make_protocol()
            protocol.connection_made(MemoryTransport(marker, self._answer))
            self.protocols.append(protocol)

    def _answer(self) -> None:
        self.answered += 1
        if self.answered >= self.target:
            self.done.set()

    async def round(self, requests: list[bytes]) -> None:
        """One request on every connection; wait for every answer."""
        self.answered, self.target = 0, len(requests)
        self.done.clear()
        for protocol, request in zip(self.protocols, requests, strict=True):
            protocol.data_received(request)
        await self.done.wait()


def rest_request(model: str) -> bytes:
    body = orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [TEXT]}]})
    head = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def grpc_requests(model: str, connections: int) -> tuple[list[bytes], list[hpack.Encoder]]:
    from oar.protocol import grpc_service_pb2 as pb
    from oar.protocol.raw import to_raw

    message = pb.ModelInferRequest(model_name=model)
    message.inputs.add(name="text", datatype="BYTES", shape=[1])
    message.raw_input_contents.append(to_raw(np.array([TEXT.encode()], dtype=object), "BYTES"))
    data = message.SerializeToString()
    return [struct.pack(">BI", 0, len(data)) + data] * connections, [hpack.Encoder() for _ in range(connections)]


def grpc_frames(encoder: hpack.Encoder, stream_id: int, message: bytes) -> bytes:
    from oar.serve.grpc_server import DATA, END_HEADERS, END_STREAM, HEADERS, frame

    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/inference.GRPCInferenceService/ModelInfer"),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    return frame(HEADERS, END_HEADERS, stream_id, encoder.encode(headers)) + frame(DATA, END_STREAM, stream_id, message)


async def measure(args: argparse.Namespace) -> None:
    from oar.serve.grpc_app import create_grpc_server
    from oar.serve.grpc_server import PREFACE, SETTINGS, WINDOW_UPDATE, GrpcProtocol, frame
    from oar.serve.http import HttpProtocol, HttpServer
    from oar.serve.rest import RestApp
    from oar.serve.server import ServeOptions, _quiet_garbage_collector, build_dataplane

    dataplane, loaded = build_dataplane(ServeOptions(models=(args.model,), intra_op_threads=1))
    model = loaded[0]
    name = model.name
    _quiet_garbage_collector()
    http_server = HttpServer(RestApp(dataplane, 1 << 22))
    grpc_server = create_grpc_server(dataplane, 1 << 22)
    rest = Connections(args.connections, lambda: HttpProtocol(http_server.app, http_server), b"HTTP/1.1 200")
    grpc = Connections(args.connections, lambda: GrpcProtocol(grpc_server), b"grpc-status\x010")
    messages, encoders = grpc_requests(name, args.connections)
    # Like real clients, open the windows wide: the server respects them, and this client never sends updates.
    opening = frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 2**31 - 1))
    opening += frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1 - 65_535))
    for protocol in grpc.protocols:
        protocol.data_received(PREFACE + opening)
    rest_bytes = [rest_request(name)] * args.connections
    next_stream = [1]

    def grpc_plan(rounds: int) -> list[list[bytes]]:
        """Request frames for ``rounds`` rounds, encoded before the clock starts (client work is not timed)."""
        plan = []
        for _ in range(rounds):
            sid = next_stream[0]
            plan.append([grpc_frames(e, sid, m) for e, m in zip(encoders, messages, strict=True)])
            next_stream[0] += 2
        return plan

    async def timed(protocol: Connections, plan: list[list[bytes]]) -> float:
        """Front-end CPU µs per request: process CPU time minus the model's compute time."""
        metrics = model.metrics
        cpu, compute = time.process_time(), metrics.compute_ns
        for requests in plan:
            await protocol.round(requests)
        cpu = time.process_time() - cpu
        compute = (metrics.compute_ns - compute) / 1e9
        return (cpu - compute) / (len(plan) * args.connections) * 1e6

    for _ in range(2):  # warm-up (the first gRPC request of a connection also fills its HPACK table)
        await rest.round(rest_bytes)
        await grpc.round(grpc_plan(1)[0])
    results: dict[str, list[float]] = {"REST": [], "gRPC": []}
    for _ in range(args.repeat):
        results["REST"].append(await timed(rest, [rest_bytes] * args.rounds))
        results["gRPC"].append(await timed(grpc, grpc_plan(args.rounds)))
    print(f"model {args.model}; {args.connections} connections x {args.rounds} rounds, {args.repeat} alternations")
    print("\n| front end | overhead µs/request (median) | runs |\n|---|---:|---|")
    for protocol, values in results.items():
        print(f"| {protocol} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    ratio = statistics.median(results["gRPC"]) / statistics.median(results["REST"])
    print(f"\ngRPC / REST front-end overhead: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="OAR_HOME holding the model")
    parser.add_argument("--model", default="chnsenti-cls")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["OAR_HOME"] = args.home
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import uvloop

    uvloop.run(measure(args))


if __name__ == "__main__":
    main()
