"""HTTP/2 stacks for the gRPC port, side by side behind the same data plane: speed, CPU, and attacks handled.

Stacks, each serving ``ModelInfer`` through the same ``InferenceService`` callback (so the same decode,
batcher and model), in its own process pinned to one core, loaded by ``h2load`` from another:

- ``oar``: oar's own HTTP/2 layer (``oar.serve.grpc_server``), as served by ``oar serve``;
- ``oar@main``: the same from another source tree (``--baseline-src``, e.g. a worktree of main), for the
  before/after of the hardening;
- ``h2``: the ``h2`` library's HTTP/2 state machine (python-hyper), driven from an ``asyncio.Protocol``;
- ``grpcio``: grpcio's C-core server (``grpc.aio``), with a generic handler passing raw bytes.

Then every flood of ``tests/serve/h2_floods.py`` runs for ``--flood-seconds`` against each stack while a
grpcio client calls it; a family counts as handled when the stack closed the attacking connections
(GOAWAY or close) and the client saw no failure and a p99 under 50 ms.

    python bench/h2_alternatives.py --home ~/.oar --model chnsenti-cls --baseline-src ../oar-main/src
    python bench/h2_alternatives.py --home ~/.oar --model num-fp32 --numeric   # a tiny model: transport-bound
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve as serve_bench  # noqa: E402  (bench/serve.py: h2load runs, request bodies, model training)

FLOODS = ROOT / "tests" / "serve" / "h2_floods.py"
FLOOD_KINDS = [
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
    "big_bodies",
    "slow_reader",
]
STACKS = ["oar", "h2", "grpcio"]


# --- the stacks (run in the serving subprocess) ------------------------------------------------------------
def _h2_protocol(service, status_of):
    """An ``asyncio.Protocol`` speaking gRPC through the ``h2`` library's connection state machine."""
    import grpc
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings

    from oar._core.errors import OarError
    from oar.protocol import grpc_service_pb2 as pb

    class H2Protocol(asyncio.Protocol):
        def __init__(self) -> None:
            config = h2.config.H2Configuration(client_side=False, header_encoding=None)
            self.conn = h2.connection.H2Connection(config=config)
            self.bodies: dict[int, bytearray] = {}
            self.calls: dict[int, object] = {}
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport) -> None:
            self.transport = transport
            self.conn.initiate_connection()
            self.conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
            transport.write(self.conn.data_to_send())

        def connection_lost(self, exc) -> None:
            self.transport = None
            for call in self.calls.values():
                call.cancel()

        def data_received(self, data: bytes) -> None:
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                self._flush()
                if self.transport is not None:
                    self.transport.close()
                return
            for event in events:
                if isinstance(event, h2.events.RequestReceived):
                    self.bodies[event.stream_id] = bytearray()
                elif isinstance(event, h2.events.DataReceived):
                    self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self._call(event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    self.bodies.pop(event.stream_id, None)
                    call = self.calls.pop(event.stream_id, None)
                    if call is not None:
                        call.cancel()
            self._flush()

        def _call(self, stream_id: int) -> None:
            body = self.bodies.pop(stream_id, b"")
            try:
                request = pb.ModelInferRequest.FromString(bytes(body[5:]))
                self.calls[stream_id] = service.model_infer(request, {}, functools.partial(self._reply, stream_id))
            except Exception as exc:
                self._reply(stream_id, exc)

        def _reply(self, stream_id: int, outcome) -> None:
            self.calls.pop(stream_id, None)
            if self.transport is None:
                return
            try:
                self.conn.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
                if isinstance(outcome, bytes):
                    self.conn.send_data(stream_id, len(outcome).to_bytes(5, "big") + outcome)
                    trailers = [(b"grpc-status", b"0")]
                else:
                    code = status_of(outcome) if isinstance(outcome, OarError) else grpc.StatusCode.INTERNAL
                    trailers = [(b"grpc-status", str(code.value[0]).encode()), (b"grpc-message", b"error")]
                self.conn.send_headers(stream_id, trailers, end_stream=True)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                pass
            self._flush()

        def _flush(self) -> None:
            if self.transport is not None:
                self.transport.write(self.conn.data_to_send())

    return H2Protocol


async def _serve_grpcio(service, status_of, port: int) -> object:
    import grpc

    from oar._core.errors import OarError
    from oar.protocol import grpc_service_pb2 as pb

    async def infer(data: bytes, context) -> bytes:
        future = asyncio.get_running_loop().create_future()

        def reply(outcome) -> None:
            if not future.done():
                future.set_result(outcome)

        request = pb.ModelInferRequest.FromString(data)
        try:
            call = service.model_infer(request, {}, reply)
        except OarError as exc:
            await context.abort(status_of(exc), str(exc))
        try:
            outcome = await future
        except asyncio.CancelledError:
            call.cancel()
            raise
        if isinstance(outcome, BaseException):
            code = status_of(outcome) if isinstance(outcome, OarError) else grpc.StatusCode.INTERNAL
            await context.abort(code, str(outcome))
        return outcome

    server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 100)])
    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelInfer": grpc.unary_unary_rpc_method_handler(infer)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server


async def _serve(stack: str, model: str, port: int, grpc_port: int) -> None:
    from oar.serve.grpc_app import InferenceService, create_grpc_server, status_of
    from oar.serve.http import HttpServer
    from oar.serve.rest import RestApp
    from oar.serve.server import ServeOptions, _quiet_garbage_collector, build_dataplane

    dataplane, _ = build_dataplane(ServeOptions(models=(model,), intra_op_threads=1))
    _quiet_garbage_collector()
    rest = HttpServer(RestApp(dataplane, 1 << 22))
    await rest.start("127.0.0.1", port)  # readiness, and the REST client of the attack runs
    service = InferenceService(dataplane)
    if stack == "oar":
        await create_grpc_server(dataplane, 1 << 22).start("127.0.0.1", grpc_port)
    elif stack == "h2":
        protocol = _h2_protocol(service, status_of)
        await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", grpc_port, backlog=4096)
    else:
        keep = await _serve_grpcio(service, status_of, grpc_port)  # noqa: F841  (keeps the server alive)
    await asyncio.Event().wait()


def _serve_main(args: argparse.Namespace) -> None:
    if args.serve == "grpcio":  # grpc.aio runs on asyncio's own loop
        asyncio.run(_serve(args.serve, args.model, args.port, args.grpc_port))
    else:
        import uvloop

        uvloop.run(_serve(args.serve, args.model, args.port, args.grpc_port))


# --- the measurements (run in the bench process) -----------------------------------------------------------
class StackServer(serve_bench._Server):
    """One stack in its own pinned process (``--serve``), with free REST and gRPC ports."""

    def __init__(self, stack: str, args: argparse.Namespace, env: dict[str, str]) -> None:
        name = "oar" if stack == "oar@main" else stack
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", name, "--model", args.model]
        super().__init__(command, args.server_core, env)
        self.command += ["--grpc-port", str(self.grpc_port)]
        self.stack = stack


def _env(stack: str, args: argparse.Namespace) -> dict[str, str]:
    src = args.baseline_src if stack == "oar@main" else str(ROOT / "src")
    return {**os.environ, "OAR_HOME": str(args.home), "PYTHONPATH": src, "TOKENIZERS_PARALLELISM": "false"}


def measure_speed(args: argparse.Namespace, stacks: list[str], bodies) -> dict[str, list]:
    """Closed-loop h2load runs, stacks alternating (``--repeat`` rounds); each round a fresh server."""
    load = argparse.Namespace(
        load_core=args.load_core, connections=args.connections, rate=0, duration=args.duration, generator_warmup=2
    )
    results: dict[str, list] = {stack: [] for stack in stacks}
    for round_index in range(args.repeat):
        order = stacks if round_index % 2 == 0 else list(reversed(stacks))
        for stack in order:
            with StackServer(stack, args, _env(stack, args)) as server:
                results[stack].append(serve_bench._h2load(f"{stack} gRPC", server, load, bodies, grpc=True))
    return results


def _request(model: str, numeric: bool):
    """The request every stack answers: a review for the text classifier, or one row of ``x`` [n, 4] FP32."""
    from oar.protocol import grpc_service_pb2 as pb
    from oar.protocol.raw import to_raw

    request = pb.ModelInferRequest(model_name=model)
    if numeric:
        request.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(to_raw(np.ones((1, 4), dtype=np.float32), "FP32"))
    else:
        request.inputs.add(name="text", datatype="BYTES", shape=[1])
        request.raw_input_contents.append(to_raw(np.array([serve_bench.TEXT.encode()], dtype=object), "BYTES"))
    return request


class GrpcBody:
    """What ``bench/serve.py``'s h2load run needs: the length-prefixed request message in a file."""

    def __init__(self, folder: Path, model: str, numeric: bool) -> None:
        self.model = model
        self.grpc = folder / "infer.grpc"
        data = _request(model, numeric).SerializeToString()
        self.grpc.write_bytes(len(data).to_bytes(5, "big") + data)


def _probe(
    address: str, model: str, numeric: bool, stop: threading.Event, latencies: list[float], failures: list[str]
) -> None:
    import grpc

    from oar.protocol import grpc_service_pb2_grpc as pb_grpc

    request = _request(model, numeric)
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        while not stop.is_set():
            start = time.perf_counter()
            try:
                stub.ModelInfer(request, timeout=2.0)
                latencies.append(time.perf_counter() - start)
            except Exception as exc:  # what the attack did to a well-behaved client
                failures.append(type(exc).__name__)
            time.sleep(0.01)


def measure_attacks(args: argparse.Namespace, stack: str) -> dict[str, dict]:
    """Each flood against a fresh ``stack`` server, with a grpcio client timed alongside."""
    outcomes = {}
    for kind in FLOOD_KINDS:
        with StackServer(stack, args, _env(stack, args)) as server:
            address = f"127.0.0.1:{server.grpc_port}"
            latencies: list[float] = []
            failures: list[str] = []
            stop = threading.Event()
            probe_args = (address, args.model, args.numeric, stop, latencies, failures)
            thread = threading.Thread(target=_probe, args=probe_args)
            thread.start()
            time.sleep(0.5)
            latencies.clear()
            rss_before = _rss(server.process.pid)
            command = ["nice", "-n", "19", sys.executable, str(FLOODS), kind, address]
            command += ["--seconds", str(args.flood_seconds), *(["--no-read"] if kind == "slow_reader" else [])]
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.flood_seconds + 60)
            rss_after = _rss(server.process.pid)
            stop.set()
            thread.join(10)
            report = json.loads(done.stdout or "{}")
            p99 = float(np.percentile(latencies, 99)) * 1e3 if latencies else float("inf")
            goaways = sum(v for k, v in report.items() if k.startswith("goaway_"))
            closed = goaways + report.get("closed_by_server", 0) > 0 or kind == "slow_reader"
            handled = closed and not failures and p99 < 50 and rss_after - rss_before < 64 << 20
            outcomes[kind] = {
                "handled": handled,
                "p99_ms": p99,
                "failures": len(failures),
                "calls": len(latencies),
                "goaway": ",".join(k[7:] for k in report if k.startswith("goaway_")) or "-",
                "rss_mib": (rss_after - rss_before) / (1 << 20),
                "alive": server.alive(),
            }
            print(f"  {stack:8} {kind:18} {outcomes[kind]}", flush=True)
    return outcomes


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--grpc-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help="OAR_HOME holding the model (default: train one)")
    parser.add_argument("--model", default="chnsenti-cls")
    parser.add_argument("--numeric", action="store_true", help="the model takes x [n, 4] FP32 (not text)")
    parser.add_argument("--baseline-src", help="another source tree to measure as 'oar@main'")
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--flood-seconds", type=float, default=2.0)
    parser.add_argument("--skip-attacks", action="store_true")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    args = parser.parse_args()
    if args.serve:
        _serve_main(args)
        return
    serve_bench._ensure_tools()
    if args.home is None:
        args.home = serve_bench._train_model(args.model)
    stacks = args.stacks.split(",") + (["oar@main"] if args.baseline_src else [])
    bodies = GrpcBody(Path(serve_bench.tempfile.mkdtemp(prefix="oar-h2alt-")), args.model, args.numeric)
    speed = measure_speed(args, stacks, bodies)
    attacks = {} if args.skip_attacks else {stack: measure_attacks(args, stack) for stack in stacks}
    print(f"\nmodel {args.model}; h2load -c {args.connections} -m 1, {args.duration} s x {args.repeat} alternating")
    print("\n| stack | req/s (median) | ratio to oar | p50 ms | p99 ms | server CPU µs/req | attack families handled |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    reference = statistics.median(r.rps for r in speed["oar"])
    for stack in stacks:
        runs = speed[stack]
        rps = statistics.median(r.rps for r in runs)
        handled = f"{sum(o['handled'] for o in attacks[stack].values())}/{len(FLOOD_KINDS)}" if attacks else "-"
        print(
            f"| {stack} | {rps:,.0f} | {rps / reference:.2f}x | {statistics.median(r.p50 for r in runs):.1f} | "
            f"{statistics.median(r.p99 for r in runs):.1f} | {statistics.median(r.cpu_us for r in runs):.0f} | "
            f"{handled} |"
        )
    if attacks:
        print("\n| flood | " + " | ".join(stacks) + " |\n|---|" + "---|" * len(stacks))
        for kind in FLOOD_KINDS:
            cells = []
            for stack in stacks:
                o = attacks[stack][kind]
                mark = "ok" if o["handled"] else "NOT"
                cells.append(f"{mark} p99 {o['p99_ms']:.0f} ms, {o['failures']} fail, GOAWAY {o['goaway']}")
            print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
