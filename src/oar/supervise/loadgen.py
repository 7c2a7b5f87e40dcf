"""An HTTP/1.1 load generator that checks every answer: for zero-failure rollover checks.

Tools such as wrk count non-2xx answers but never read a body, so an answer
from the wrong model would pass. This one reads every answer and counts as a
failure anything but a 200 whose JSON has outputs from the expected model: a
refused or reset connection, a timeout, a 4xx/5xx, a request still
unanswered when the run's drain time is over. It runs in its own thread and
event loop, so a test can roll a deployment over while it runs.

Two ways to load:

- closed loop (``rate=None``): each of ``connections`` keep-alive connections
  sends its next request as soon as an answer arrives;
- open loop (``rate=R``): R requests a second are *offered* on a fixed
  schedule whatever the answers do (pipelined on ``connections``
  connections), so a slow server sees its queue grow instead of the load
  easing off: the offered rate is the one asked for, by construction.

    with LoadGenerator("127.0.0.1", 8600, "/v2/models/m/infer", body, rate=1200) as load:
        deployment.rollover(2)
    load.result.failed == 0, load.result.requests_per_s, load.result.versions
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import orjson
import uvloop


@dataclass
class LoadResult:
    """Counts of one run: every request sent is either ``ok`` or ``failed`` (with its reason)."""

    seconds: float = 0.0  # how long requests were being sent
    ok: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)  # model_version of the good answers
    latencies_s: list[float] = field(default_factory=list)  # send to answer, of every answered request

    def latency_ms(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of the answered requests' latency, in milliseconds."""
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return 1000.0 * ordered[min(int(q * len(ordered)), len(ordered) - 1)]

    @property
    def sent(self) -> int:
        return self.ok + self.failed

    @property
    def requests_per_s(self) -> float:
        """Requests offered per second of sending."""
        return self.sent / self.seconds if self.seconds else 0.0


class LoadGenerator:
    """POST ``body`` to ``http://host:port/path`` from ``start()`` until ``stop()``; see the module docstring.

    ``stop()`` ends sending, then waits up to ``drain`` seconds for the answers still due; any missing then is
    a failure. ``pipeline`` (closed loop) keeps that many requests in flight on each connection.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        body: bytes,
        connections: int = 16,
        token: str | None = None,
        model: str | None = None,
        rate: float | None = None,
        timeout: float = 10.0,
        pipeline: int = 1,
        drain: float = 15.0,
    ) -> None:
        auth = f"authorization: Bearer {token}\r\n" if token else ""
        self.request = (
            f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"{auth}content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.host, self.port, self.connections = host, port, connections
        self.model, self.rate, self.timeout, self.pipeline, self.drain = model, rate, timeout, pipeline, drain
        self.result = LoadResult()
        self.sending = True
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = threading.Event()

    def start(self) -> LoadGenerator:
        self._thread = threading.Thread(target=lambda: uvloop.run(self._main()), name="oar-loadgen", daemon=True)
        self._thread.start()
        self._running.wait(10)
        return self

    def stop(self) -> LoadResult:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        return self.result

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        connections = [_Connection(self) for _ in range(self.connections)]
        for connection in connections:
            connection.connect(loop)
        while not all(c.transport or c.failed_connect for c in connections):
            await asyncio.sleep(0.005)
        started = time.perf_counter()
        self._running.set()
        ticker = loop.create_task(self._offer(connections, started)) if self.rate else None
        while not self._stopping.is_set():
            await asyncio.sleep(0.02)
            for connection in connections:
                connection.watch(loop, time.monotonic())
        self.sending = False
        self.result.seconds = time.perf_counter() - started
        if ticker is not None:
            ticker.cancel()
        deadline = time.monotonic() + self.drain
        while any(c.pending for c in connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            for connection in connections:
                connection.watch(loop, time.monotonic())
        for connection in connections:
            connection.close("unanswered when the drain time ended")

    async def _offer(self, connections: list[_Connection], started: float) -> None:
        """Open loop: request n goes out at ``started + n / rate`` on connection ``n % connections``."""
        assert self.rate is not None
        sent = 0
        while True:
            due = int((time.perf_counter() - started) * self.rate) + 1
            while sent < due:
                connections[sent % len(connections)].offer()
                sent += 1
            await asyncio.sleep(0.001)

    def judge(self, status: int, body: bytes) -> None:
        if status != 200:
            self.fail(f"HTTP {status}")
            return
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.fail("bad JSON")
            return
        if not isinstance(answer, dict) or "outputs" not in answer:
            self.fail("no outputs")
        elif self.model is not None and answer.get("model_name") != self.model:
            self.fail(f"answer from model {answer.get('model_name')!r}")
        else:
            self.result.ok += 1
            self.result.versions[str(answer.get("model_version"))] += 1

    def fail(self, reason: str) -> None:
        self.result.failed += 1
        self.result.reasons[reason] += 1


class _Connection(asyncio.Protocol):
    """One keep-alive connection; answers come back in the order of the requests (HTTP/1.1).

    A protocol object rather than streams: the generator must outpace the server it tests on a shared core.
    """

    def __init__(self, load: LoadGenerator) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: deque[float] = deque()  # send times of the requests awaiting an answer, oldest first
        self.connecting = False
        self.failed_connect = False
        self.retry_at = 0.0

    def connect(self, loop: asyncio.AbstractEventLoop) -> None:
        self.connecting = True
        task = loop.create_task(loop.create_connection(lambda: self, self.load.host, self.load.port))
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task) -> None:
        self.connecting = False
        if task.cancelled() or task.exception() is not None:
            self.failed_connect = True
            if self.load.sending and not self.load.rate:  # open loop: offer() counts what could not be sent
                self.load.fail("cancelled" if task.cancelled() else type(task.exception()).__name__)
            self.retry_at = time.monotonic() + 0.01

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.failed_connect = False
        self.buffer.clear()
        if not self.load.rate:
            self._send(self.load.pipeline)

    def offer(self) -> None:
        """Open loop: send one request now, answered or not; with no connection it is a failure."""
        if self.transport is None:
            self.load.fail("not connected")
        else:
            self._send(1)

    def _send(self, count: int) -> None:
        if not self.load.sending or self.transport is None:
            return
        self.pending.extend([time.monotonic()] * count)
        self.transport.write(self.load.request * count)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                status, length, close = _parse_head(bytes(self.buffer[:end]))
            except ValueError:
                self._drop("bad response head")
                return
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            if self.pending:
                self.load.result.latencies_s.append(time.monotonic() - self.pending.popleft())
            self.load.judge(status, body)
            if close:
                self._drop("closed with requests pending")
                return
            if not self.load.rate:
                self._send(1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_pending("connection lost" if exc is None else type(exc).__name__)
        self.transport = None
        self.retry_at = time.monotonic() + 0.01

    def watch(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        """Called every 20 ms: time out a stuck answer, reconnect a lost connection."""
        if self.pending and now - self.pending[0] > self.load.timeout:
            self._drop("timeout")
        if self.transport is None and not self.connecting and now >= self.retry_at and self.load.sending:
            self.connect(loop)

    def _fail_pending(self, reason: str) -> None:
        for _ in range(len(self.pending)):
            self.load.fail(reason)
        self.pending.clear()

    def _drop(self, reason: str) -> None:
        self._fail_pending(reason)
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def close(self, reason: str) -> None:
        self._drop(reason)


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """Status, content length and whether the server closes the connection, from a response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    return status, length, close
