"""REST front ends side by side behind the same data plane: oar's own HTTP/1.1 server vs granian.

Stacks, each answering ``POST /v2/models/{m}/infer`` (Open Inference Protocol JSON) through the same
``DataPlane`` (the repository, batcher and ONNX Runtime session ``oar serve`` builds with
``build_dataplane``), in its own process pinned to one core, loaded by ``wrk`` from another:

- ``oar``: ``oar serve MODEL --grpc-port 0``: oar's HTTP/1.1 front end (``oar.serve.http``) and ``RestApp``;
- ``granian``: granian (Rust, hyper) with one worker serving ``RestApp`` through its ASGI entry: the same
  routes, codec and errors as ``oar serve``, only the HTTP server differs.

Both get the same limits where granian has a setting for one: header timeout (``--http1-header-read-timeout``),
head size (``--http1-buffer-size``), backlog, and a concurrency cap (``--backpressure``, for the connection
cap); the body limit (413) is ``RestApp``'s, as in ``oar serve``. granian has no setting for
a body timeout, a keep-alive idle timeout, a send timeout, a URL length, or a connection cap that refuses.

Then each hostile HTTP/1.1 client family (after tests/serve/test_hostile_http1.py, whose socket helpers and
well-behaved client this imports) runs for ``--attack-seconds`` against a fresh server of each stack while
the well-behaved client (its own process, one keep-alive connection, a request every 10 ms) measures its
latency. A family counts as handled when the attack was bounded (its connections were answered, refused or
closed within the configured timeouts), and the client saw no failure, a p99 under 50 ms, and the server's
RSS grew by less than 64 MiB.

    python bench/rest_alternatives.py --duration 5 --repeat 2              # the tiny numeric model num-fp32
    python bench/rest_alternatives.py --home ~/.oar --model chnsenti-cls   # the text classifier
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

STACKS = ["oar", "granian"]
# The limits of tests/serve/test_hostile_http1.py: short, so each is reached within an attack's seconds.
CAP = 200
MAX_BODY = 1 << 20
HEADER_S, BODY_S, KEEPALIVE_S, SEND_S, LINGER_S = 1.0, 2.0, 3.0, 2.0, 1.0
MAX_HEADER_BYTES = 16 * 1024
SLACK_S = 1.5  # what a bounded connection may take past its timeout (sweep ticks, a loaded machine)
P99_MS = 50.0
RSS_GROWTH = 64 << 20
FAMILIES = [
    "idle_flood",
    "idle_keepalive",
    "slowloris",
    "slow_body",
    "long_url",
    "many_headers",
    "big_header",
    "big_body",
    "chunked_body",
    "expect_100",
    "pipelining",
    "partial_bodies",
]
BODY_BUDGET = 32 << 20  # oar's --max-buffered-body-bytes here; granian has no setting for one


# --- the granian stack (run in the serving subprocess) -----------------------------------------------------
def create_granian_app():
    """granian's factory, called in its worker process: the data plane exactly as ``oar serve`` builds it,
    behind ``RestApp``'s own ASGI entry, so only the HTTP server differs between the stacks."""
    from oar.serve.rest import RestApp
    from oar.serve.server import ServeOptions, _quiet_garbage_collector, build_dataplane

    max_body = int(os.environ["OAR_BENCH_MAX_BODY"])
    options = ServeOptions(models=(os.environ["OAR_BENCH_MODEL"],), intra_op_threads=1, max_body_bytes=max_body)
    dataplane, _ = build_dataplane(options)
    _quiet_garbage_collector()
    return RestApp(dataplane, max_body_bytes=max_body)


def _serve_granian(args: argparse.Namespace) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings

    os.environ["OAR_BENCH_MODEL"] = args.model
    os.environ["OAR_BENCH_MAX_BODY"] = str(MAX_BODY)
    Granian(
        "rest_alternatives:create_granian_app",
        factory=True,
        address="127.0.0.1",
        port=args.port,
        interface=Interfaces.ASGINL,
        workers=1,
        runtime_threads=1,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        backlog=4096,  # oar's listen backlog
        backpressure=CAP,  # at most this many requests in flight: the nearest setting to a connection cap
        http1_settings=HTTP1Settings(
            header_read_timeout=int(HEADER_S * 1000), keep_alive=True, max_buffer_size=MAX_HEADER_BYTES
        ),
        runtime_mode=args.granian_runtime_mode,
        task_impl=args.granian_task_impl,
        log_level="error",
    ).serve()


def _oar_command(model: str, port: int) -> list[str]:
    """``oar serve`` with the hostile-client test's limits, REST only."""
    command = [sys.executable, "-m", "oar.cli.main", "serve", model, "--threads", "1", "--grpc-port", "0"]
    command += ["--port", str(port), "--max-connections", str(CAP), "--max-body-bytes", str(MAX_BODY)]
    command += ["--header-timeout", str(HEADER_S), "--body-timeout", str(BODY_S)]
    command += ["--keepalive-timeout", str(KEEPALIVE_S), "--send-timeout", str(SEND_S)]
    command += ["--linger-timeout", str(LINGER_S), "--max-header-bytes", str(MAX_HEADER_BYTES)]
    command += ["--max-buffered-body-bytes", str(BODY_BUDGET)]
    return command


# --- the processes -----------------------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (granian's worker is a child of its supervisor)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def _rss(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


class StackServer:
    """One stack in its own process pinned to ``core``; what ``bench/serve.py``'s ``wrk`` run needs."""

    host = "127.0.0.1"

    def __init__(self, stack: str, args: argparse.Namespace, env: dict[str, str]) -> None:
        from oar.serve.process import free_port

        self.stack = stack
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if stack == "oar":
            command = _oar_command(args.model, self.port)
        else:
            command = [sys.executable, str(Path(__file__).resolve()), "--serve", stack, "--model", args.model]
            command += ["--port", str(self.port), "--server-core", str(args.server_core)]
            command += ["--granian-runtime-mode", args.granian_runtime_mode]
            command += ["--granian-task-impl", args.granian_task_impl]
        self.command = ["taskset", "-c", str(args.server_core), *command]
        self.env = env

    def __enter__(self) -> StackServer:
        import httpx

        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(self.command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"{self.stack} server failed: {self.log.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"{self.stack} server did not become ready in 180 s")
        for pid in _tree(self.process.pid):  # ahead of the attack generators and the load
            with contextlib.suppress(PermissionError, ProcessLookupError):
                os.setpriority(os.PRIO_PROCESS, pid, -10)
        return self

    @property
    def serving_pid(self) -> int:
        """The process holding the data plane: oar's server, granian's worker."""
        tree = _tree(self.process.pid)
        return tree[-1] if self.stack == "granian" and len(tree) > 1 else self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's processes so far (all their threads)."""
        return sum(_cpu(pid) for pid in _tree(self.process.pid))

    def rss_mib(self) -> float:
        return _rss(self.serving_pid) / (1 << 20)

    def supervisor_rss_mib(self) -> float:
        return _rss(self.process.pid) / (1 << 20) if self.serving_pid != self.process.pid else 0.0

    def alive(self) -> bool:
        import httpx

        try:
            return self.process.poll() is None and httpx.get(f"{self.url}/v2/health/live", timeout=5).is_success
        except httpx.TransportError:
            return False

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# --- the speed runs ----------------------------------------------------------------------------------------
class RestBody:
    """What ``bench/serve.py``'s ``wrk`` run needs: the OIP JSON request, and a wrk script sending it."""

    def __init__(self, folder: Path, model: str, body: bytes) -> None:
        self.model = model
        self.body = body
        self.rest_json = folder / "infer.json"
        self.wrk_lua = folder / "infer.lua"
        self.rest_json.write_bytes(body)
        self.wrk_lua.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{body.decode()}]==]\n",
            encoding="utf-8",
        )


def _request_body(model: str) -> bytes:
    """One row of ``x`` [n, 4] FP32 for a numeric model, one review of median length for a text model."""
    import orjson

    import serve as serve_bench
    from oar.hub import Hub
    from oar.serve.repository import parse_model_spec

    spec = Hub().open_package(*parse_model_spec(model)).manifest.inputs[0]
    if spec.datatype == "BYTES":
        tensor = {"name": spec.name, "datatype": "BYTES", "shape": [1], "data": [serve_bench.TEXT]}
    else:
        tensor = {"name": spec.name, "datatype": spec.datatype, "shape": [1, 4], "data": [0.5, 1, 2, 4]}
    return orjson.dumps({"inputs": [tensor]})


def measure_speed(args: argparse.Namespace, env: dict[str, str], bodies: RestBody) -> dict[str, list]:
    """Closed-loop wrk runs, stacks alternating (``--repeat`` rounds); each round a fresh server."""
    import serve as serve_bench

    load = argparse.Namespace(
        load_core=args.load_core,
        connections=args.connections,
        rate=0,
        duration=args.duration,
        generator_warmup=args.warmup,
        rest_generator="wrk",
    )
    results: dict[str, list] = {stack: [] for stack in args.stacks}
    for round_index in range(args.repeat):
        order = args.stacks if round_index % 2 == 0 else list(reversed(args.stacks))
        for stack in order:
            with StackServer(stack, args, env) as server:
                before = serve_bench._scrape(server.url)
                result = serve_bench._rest_load(f"{stack} REST", server, load, bodies)
                after = serve_bench._scrape(server.url)
                result.rss_mib = server.rss_mib()
                result.supervisor_rss_mib = server.supervisor_rss_mib()
                requests = serve_bench._delta(before, after, "oar_queue_duration_seconds_count")
                batches = serve_bench._delta(before, after, "oar_compute_duration_seconds_count") or 1
                result.note = f"{requests / batches:.1f} requests per batch"
                print(f"  {result.note}", flush=True)
                results[stack].append(result)
    return results


# --- the hostile clients (run in the bench process, on the load core) ---------------------------------------
def _hostile():
    sys.path.insert(0, str(ROOT))
    from tests.serve import test_hostile_http1

    return test_hostile_http1


class Probe:
    """The test's well-behaved client process, timing one request every 10 ms on a keep-alive connection."""

    def __init__(self, server: StackServer, seconds: float, path: str, body: bytes) -> None:
        command = [sys.executable, "-c", _hostile().PROBE, server.host, str(server.port), str(seconds), path]
        self.process = subprocess.Popen([*command, body.decode()], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.ready = self.process.stdout.readline().strip() == "ready"

    def result(self, seconds: float) -> tuple[list[float], list]:
        out, _ = self.process.communicate(timeout=seconds + 30)
        lines = out.strip().splitlines()
        if not self.ready or not lines:
            return [], ["the well-behaved client could not start"]
        data = json.loads(lines[-1])
        return data["latencies"], data["failures"]


def _status(reply: bytes) -> int:
    return int(reply[9:12]) if reply.startswith(b"HTTP/1.1 ") and reply[9:12].isdigit() else 0


def _codes(codes: list[int]) -> str:
    """How many of each status; 0 is a connection closed, or left open, without an answer."""
    counts: dict[int, int] = {}
    for code in codes:
        counts[code] = counts.get(code, 0) + 1
    return ",".join(f"{code or 'no answer'}x{n}" for code, n in sorted(counts.items())) or "none"


class Attacks:
    """Each family: run for ``seconds`` against ``server``; return (bounded, what was seen)."""

    def __init__(self, server: StackServer, seconds: float, infer: bytes, body: bytes) -> None:
        self.server, self.seconds, self.infer, self.body = server, seconds, infer, body
        self.h = _hostile()
        self.request = (
            b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (
                infer,
                len(body),
                body,
            )
        )

    def _repeat(self, attempt) -> list:
        """``attempt()`` over and over for the attack's seconds, from two threads."""
        seen: list = []
        end = time.monotonic() + self.seconds

        def loop() -> None:
            while time.monotonic() < end:
                seen.append(attempt())

        threads = [threading.Thread(target=loop) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return seen

    def _refused(self, data: bytes) -> tuple[bool, str]:
        """Send ``data`` repeatedly; bounded when every reply is a 4xx refusal and the server closed in time."""

        def attempt() -> tuple[int, float, bool]:
            started = time.monotonic()
            try:
                reply = self.h.exchange(self.server, data, limit=HEADER_S + LINGER_S + SLACK_S + 2)
            except OSError:
                return 0, time.monotonic() - started, False
            return _status(reply), time.monotonic() - started, b"aaaaaaaa" in reply

        seen = self._repeat(attempt)
        slowest = max((t for _, t, _ in seen), default=0.0)
        echoed = sum(e for _, _, e in seen)
        bounded = bool(seen) and all(400 <= c < 500 for c, _, _ in seen) and slowest < HEADER_S + LINGER_S + SLACK_S
        bounded = bounded and not echoed
        return bounded, f"{_codes([c for c, _, _ in seen])}; closed within {slowest:.2f} s; echoed {echoed}"

    def idle_flood(self) -> tuple[bool, str]:
        """Idle sockets past the cap: each newcomer refused or given the place of the oldest idle one (closed
        before the header timeout), and every accepted one closed by the header timeout."""
        refused, lifetimes = 0, []
        selector = selectors.DefaultSelector()
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            while len(selector.get_map()) < CAP + 50:
                with contextlib.suppress(OSError):
                    sock = socket.create_connection((self.server.host, self.server.port), timeout=2)
                    sock.setblocking(False)
                    selector.register(sock, selectors.EVENT_READ, time.monotonic())
            for key, _ in selector.select(timeout=0.05):
                data = b""
                with contextlib.suppress(OSError):
                    data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                if data.startswith(b"HTTP/1.1 503"):
                    refused += 1
                else:
                    lifetimes.append(time.monotonic() - key.data)
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
        held = len(selector.get_map())
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        longest = max(lifetimes, default=float("inf"))
        made_room = min(lifetimes, default=float("inf")) < HEADER_S * 0.9
        bounded = (refused > 0 or made_room) and longest < HEADER_S + SLACK_S
        shortest = min(lifetimes, default=float("nan"))
        return bounded, (
            f"refused {refused}, closed {len(lifetimes)} (shortest {shortest:.2f} s, longest {longest:.2f} s), "
            f"still open {held}"
        )

    def idle_keepalive(self) -> tuple[bool, str]:
        """Connections left idle after an answer: each closed after the keep-alive timeout."""
        socks, waited = [], []
        for _ in range(50):
            sock = self.h.connect(self.server)
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            socks.append((sock, sock.recv(4096), time.monotonic()))
        selector = selectors.DefaultSelector()
        for sock, _, started in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, started)
        end = time.monotonic() + max(self.seconds, KEEPALIVE_S + SLACK_S + 1)
        while selector.get_map() and time.monotonic() < end:
            for key, _ in selector.select(timeout=0.05):
                with contextlib.suppress(OSError):
                    if key.fileobj.recv(4096):  # type: ignore[union-attr]
                        continue
                waited.append(time.monotonic() - key.data)
                selector.unregister(key.fileobj)
        held = len(selector.get_map())
        for sock, _, _ in socks:
            sock.close()
        answered = sum(_status(first) == 200 for _, first, _ in socks)
        longest = max(waited, default=float("inf"))
        bounded = held == 0 and answered == len(socks) and longest < KEEPALIVE_S + SLACK_S
        return bounded, f"answered {answered}, closed {len(waited)} (longest {longest:.2f} s), still open {held}"

    def _slow_senders(self, head: bytes, drip: bytes, limit: float) -> tuple[bool, str]:
        """The test's slow senders (``drip_senders``); each must be cut within ``limit``."""
        answered, held = self.h.drip_senders(self.server, head, drip, self.seconds, give_up_s=limit + SLACK_S + 3)
        longest = max((w for _, w in answered), default=float("inf"))
        bounded = held == 0 and len(answered) >= CAP // 2 and longest < limit + SLACK_S
        return bounded, f"{_codes([c for c, _ in answered])} (longest {longest:.2f} s), still open {held}"

    def slowloris(self) -> tuple[bool, str]:
        return self._slow_senders(b"POST %s HTTP/1.1\r\nHost: t\r\nX-Slow: " % self.infer, b"a", HEADER_S)

    def slow_body(self) -> tuple[bool, str]:
        head = b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" % self.infer
        return self._slow_senders(head, b"{", BODY_S)

    def long_url(self) -> tuple[bool, str]:
        return self._refused(b"GET /" + b"a" * (64 * 1024) + b" HTTP/1.1\r\nHost: t\r\n\r\n")

    def many_headers(self) -> tuple[bool, str]:
        fields = b"".join(b"X-F%d: v\r\n" % i for i in range(150))
        return self._refused(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n")

    def big_header(self) -> tuple[bool, str]:
        return self._refused(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (40 * 1024))

    def _streamed(self, head: bytes, chunk: bytes, total: int) -> tuple[bool, str]:
        seen = self._repeat(lambda: _status(self.h._send_while_reading(self.server, head, chunk, total=total)))
        return bool(seen) and set(seen) == {413}, _codes(seen)

    def big_body(self) -> tuple[bool, str]:
        """A declared 64 MiB body, sent anyway: the 413 must be readable by the client still sending."""
        head = b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (self.infer, 64 * MAX_BODY)
        return self._streamed(head, b"x" * 65536, MAX_BODY)

    def chunked_body(self) -> tuple[bool, str]:
        """A chunked body past the limit: a readable 413 once the limit is crossed."""
        head = b"POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" % self.infer
        return self._streamed(head, b"10000\r\n%s\r\n" % (b"x" * 65536), 8 * MAX_BODY)

    def expect_100(self) -> tuple[bool, str]:
        """``Expect: 100-continue``: 100 then 200 when it fits; 413 without the body when it does not."""
        ok = b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (
            self.infer,
            len(self.body),
        )
        too_big = ok.replace(b"%d" % len(self.body), b"%d" % (2 * MAX_BODY))
        unknown = ok.replace(b"100-continue", b"200-ok")

        def attempt() -> tuple[bool, int, int]:
            try:
                with self.h.connect(self.server) as sock:
                    sock.sendall(ok)
                    sock.settimeout(2)
                    continued = sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
                    sock.sendall(self.body)
                    continued = continued and _status(sock.recv(65536)) == 200
                refused = _status(self.h.exchange(self.server, too_big, limit=2 + LINGER_S))
                return continued, refused, _status(self.h.exchange(self.server, unknown, limit=2 + LINGER_S))
            except OSError:
                return False, 0, 0

        seen = self._repeat(attempt)
        continued = sum(c for c, _, _ in seen)
        bounded = bool(seen) and continued == len(seen) and {r for _, r, _ in seen} == {413}
        too = _codes([r for _, r, _ in seen])
        return (
            bounded,
            f"100+200 {continued}/{len(seen)}; too big {too}; other expectation {_codes([u for *_, u in seen])}",
        )

    def partial_bodies(self) -> tuple[bool, str]:
        """CAP - 50 connections each send 3/4 of a whole body and hold it: the server's RSS while they are held
        and after they close (the test's ``partial_bodies``). Bounded: held growth under the body budget plus
        16 MiB, and back within 16 MiB of the start once they are gone."""
        before = self.server.rss_mib()
        peak = [before]
        socks = self.h.partial_bodies(
            self.server,
            CAP - 50,
            declared=MAX_BODY,
            send=MAX_BODY * 3 // 4,
            seconds=self.seconds,
            sample=lambda: peak.__setitem__(0, max(peak[0], self.server.rss_mib())),
        )
        time.sleep(1.0)  # held: nothing more is sent
        peak[0] = max(peak[0], self.server.rss_mib())
        answered = 0
        for sock in socks:
            with contextlib.suppress(OSError):
                if sock.recv(4096).startswith(b"HTTP/1.1 503"):
                    answered += 1
            sock.close()
        time.sleep(2 * LINGER_S + 1)  # lingering closes end; freed memory goes back
        after = self.server.rss_mib()
        held, left = peak[0] - before, after - before
        bounded = held < (BODY_BUDGET >> 20) + 16 and left < 16
        return bounded, f"RSS {before:.0f} MiB, held +{held:.0f} MiB, after close +{left:.0f} MiB; 503 to {answered}"

    def pipelining(self) -> tuple[bool, str]:
        """Pipelined requests, never read: the server must stop reading, then cut the peer after the send timeout."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.connect((self.server.host, self.server.port))
        sock.settimeout(0.5)
        burst, sent, stalls, cut = self.request * 64, 0, 0, None
        push_end = time.monotonic() + self.seconds
        stop_end = push_end + SEND_S + 10  # time to work through what it took in, then the send timeout
        while cut is None and time.monotonic() < stop_end:
            try:
                sent += sock.send(burst)
            except TimeoutError:
                stalls += 1
            except OSError as exc:
                cut = exc
        sock.close()
        bounded = stalls > 0 and isinstance(cut, (ConnectionResetError, BrokenPipeError)) and sent < 64 << 20
        return (
            bounded,
            f"sent {sent >> 10} KiB, {stalls} stalls, {'cut: ' + type(cut).__name__ if cut else 'never cut'}",
        )


def measure_attacks(args: argparse.Namespace, stack: str, env: dict[str, str], bodies: RestBody) -> dict[str, dict]:
    """Each family against a fresh ``stack`` server, the well-behaved client timed alongside."""
    infer = f"/v2/models/{bodies.model}/infer"
    outcomes = {}
    for family in args.families:
        with StackServer(stack, args, env) as server:
            rss_before = _rss(server.serving_pid)
            probe = Probe(server, args.attack_seconds, infer, bodies.body)
            peak = [rss_before]
            sampling = threading.Event()

            def sample(server=server, peak=peak, sampling=sampling) -> None:
                while not sampling.wait(0.2):
                    peak[0] = max(peak[0], _rss(server.serving_pid))

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                bounded, seen = getattr(Attacks(server, args.attack_seconds, infer.encode(), bodies.body), family)()
            except OSError as exc:  # the attack could not even be made (refused connections, resets)
                bounded, seen = False, f"attack failed: {exc!r}"
            latencies, failures = probe.result(args.attack_seconds)
            sampling.set()
            sampler.join()
            growth = max(peak[0], _rss(server.serving_pid)) - rss_before
            latencies.sort()
            p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else float("inf")
            handled = bounded and not failures and p99 < P99_MS and growth < RSS_GROWTH
            outcomes[family] = {
                "handled": handled,
                "bounded": bounded,
                "seen": seen,
                "p99_ms": p99,
                "failures": len(failures),
                "calls": len(latencies),
                "rss_growth_mib": growth / (1 << 20),
                "alive": server.alive(),
            }
            print(f"  {stack:8} {family:15} {outcomes[family]}", flush=True)
    return outcomes


# --- the report ----------------------------------------------------------------------------------------------
def _numeric_home() -> Path:
    """A temporary OAR_HOME holding ``num-fp32``: the tests' tiny real network, x [n, 4] -> output [n, 3]."""
    home = Path(tempfile.mkdtemp(prefix="oar-restalt-home-"))
    os.environ["OAR_HOME"] = str(home)
    sys.path.insert(0, str(ROOT))
    from tests.serve.conftest import register_numeric

    from oar.hub import Hub

    print(f"exporting num-fp32 into {home} ...", flush=True)
    register_numeric(Hub(), home / "export", "num-fp32", seed=1)
    return home


def _print_report(args, speed: dict[str, list], attacks: dict[str, dict], load: str) -> None:
    print(
        f"\nmodel {args.model}; wrk -t1 -c{args.connections}, {args.duration} s x {args.repeat} rounds alternating; "
        f"server on core {args.server_core}, load on core {args.load_core}; load average {load}"
    )
    print(
        "\n| stack | req/s (median) | ratio to oar | p50 ms | p99 ms | server CPU µs/req | RSS MiB | families handled |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    reference = statistics.median(r.rps for r in speed["oar"]) if "oar" in speed else float("nan")
    for stack in args.stacks:
        runs = speed[stack]
        rps = statistics.median(r.rps for r in runs)
        handled = (
            f"{sum(o['handled'] for o in attacks[stack].values())}/{len(args.families)}" if stack in attacks else "-"
        )
        rss = statistics.median(r.rss_mib for r in runs)
        supervisor = statistics.median(r.supervisor_rss_mib for r in runs)
        rss_cell = f"{rss:.0f}" + (f" (+{supervisor:.0f} supervisor)" if supervisor else "")
        print(
            f"| {stack} | {rps:,.0f} | {rps / reference:.2f}x | {statistics.median(r.p50 for r in runs):.2f} | "
            f"{statistics.median(r.p99 for r in runs):.2f} | {statistics.median(r.cpu_us for r in runs):.0f} | "
            f"{rss_cell} | {handled} |"
        )
    for stack in args.stacks:
        print(f"- {stack}: " + "; ".join(f"{r.rps:.0f} req/s, {r.cpu_us:.0f} µs/req, {r.note}" for r in speed[stack]))
    print("- per round req/s: " + "; ".join(f"{s} " + ", ".join(f"{r.rps:.0f}" for r in speed[s]) for s in args.stacks))
    if "oar" in speed and "granian" in speed:
        ratio = statistics.median(r.rps for r in speed["granian"]) / reference
        cpu = statistics.median(r.cpu_us for r in speed["granian"]) / statistics.median(r.cpu_us for r in speed["oar"])
        print(f"- granian / oar: {ratio:.2f}x req/s, {cpu:.2f}x server CPU per request")
    if attacks:
        stacks = [s for s in args.stacks if s in attacks]
        print("\n| family | " + " | ".join(stacks) + " |\n|---|" + "---|" * len(stacks))
        for family in args.families:
            cells = []
            for stack in stacks:
                o = attacks[stack][family]
                mark = "handled" if o["handled"] else "NOT handled"
                cells.append(
                    f"{mark}: {o['seen']}; client p99 {o['p99_ms']:.1f} ms, {o['failures']} failures; "
                    f"RSS +{o['rss_growth_mib']:.0f} MiB"
                )
            print(f"| {family} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=["granian"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help="OAR_HOME holding the model (default: export num-fp32 into one)")
    parser.add_argument("--model", default="num-fp32")
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--duration", type=int, default=8, help="seconds of each measured wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured wrk load before each run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--attack-seconds", type=float, default=3.0)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--skip-attacks", action="store_true")
    parser.add_argument("--granian-runtime-mode", choices=["auto", "st", "mt"], default="auto")
    parser.add_argument("--granian-task-impl", choices=["asyncio", "rust"], default="asyncio")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    args = parser.parse_args()
    if args.serve:
        os.sched_setaffinity(0, {args.server_core})
        _serve_granian(args)
        return
    args.stacks = args.stacks.split(",")
    args.families = args.families.split(",")
    if "granian" in args.stacks:
        try:
            import granian  # noqa: F401
        except ImportError:
            print("granian is not installed: pip install granian==2.8.7 (or the [dev] extra)", file=sys.stderr)
            sys.exit(2)
    import serve as serve_bench  # bench/serve.py: wrk runs

    serve_bench._ensure_tools()
    os.sched_setaffinity(0, {args.load_core})  # the bench, its attacks and the probe stay off the server's core
    home = args.home or _numeric_home()
    os.environ["OAR_HOME"] = str(home)
    env = {**os.environ, "OAR_HOME": str(home), "PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false"}
    bodies = RestBody(
        Path(tempfile.mkdtemp(prefix="oar-restalt-")), args.model.partition(":")[0], _request_body(args.model)
    )
    load = Path("/proc/loadavg").read_text().strip()
    speed = measure_speed(args, env, bodies)
    attacks = {} if args.skip_attacks else {stack: measure_attacks(args, stack, env, bodies) for stack in args.stacks}
    load += " -> " + Path("/proc/loadavg").read_text().strip()
    _print_report(args, speed, attacks, load)


if __name__ == "__main__":
    main()
