"""A closed-loop HTTP/1.1 load generator that checks every answer: for zero-failure rollover checks.

Tools such as wrk count non-2xx answers but never read a body, so an answer
from the wrong model would pass. This one keeps ``connections`` keep-alive
connections busy (each sends its next request as soon as the previous answer
arrives), reads every answer, and counts as a failure anything but a 200
whose JSON names the expected model: a refused or reset connection, a
timeout, a 4xx/5xx. It runs in its own thread and event loop, so a test can
roll a deployment over while it runs.

    with LoadGenerator("127.0.0.1", 8600, "/v2/models/m/infer", body, connections=16) as load:
        deployment.rollover(2)
    load.result.failed == 0, load.result.requests_per_s, load.result.versions
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
import uvloop


@dataclass
class LoadResult:
    """Counts of one run: every request sent is either ``ok`` or ``failed`` (with its reason)."""

    seconds: float = 0.0
    ok: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)  # model_version of the good answers

    @property
    def sent(self) -> int:
        return self.ok + self.failed

    @property
    def requests_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


class LoadGenerator:
    """``connections`` connections POSTing ``body`` to ``http://host:port/path`` until ``stop()``."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        body: bytes,
        connections: int = 16,
        token: str | None = None,
        model: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        auth = f"authorization: Bearer {token}\r\n" if token else ""
        self.request = (
            f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"{auth}content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.host, self.port, self.connections, self.timeout = host, port, connections, timeout
        self.model = model
        self.result = LoadResult()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = threading.Event()

    def start(self) -> LoadGenerator:
        self._thread = threading.Thread(target=self._run, name="oar-loadgen", daemon=True)
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

    def _run(self) -> None:
        uvloop.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self._running.set()
        connections = [_Connection(self) for _ in range(self.connections)]
        for connection in connections:
            connection.connect(loop)
        while not self._stopping.is_set():
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for connection in connections:
                connection.watch(loop, now)
        self.result.seconds = time.perf_counter() - started
        for connection in connections:
            connection.close()

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
    """One keep-alive connection: sends the next request when an answer is complete (a protocol object,
    not streams: the generator must outpace the server it tests on a shared core)."""

    def __init__(self, load: LoadGenerator) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent_at: float | None = None  # an answer is awaited since then
        self.connecting = False
        self.retry_at = 0.0

    def connect(self, loop: asyncio.AbstractEventLoop) -> None:
        self.connecting = True
        task = loop.create_task(loop.create_connection(lambda: self, self.load.host, self.load.port))
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task) -> None:
        self.connecting = False
        if task.cancelled() or task.exception() is not None:
            reason = "cancelled" if task.cancelled() else type(task.exception()).__name__
            self.load.fail(reason)  # the request this connection was about to send
            self.retry_at = time.monotonic() + 0.01

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer.clear()
        self._send()

    def _send(self) -> None:
        if self.load._stopping.is_set() or self.transport is None:
            self.sent_at = None
            return
        self.sent_at = time.monotonic()
        self.transport.write(self.load.request)

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
            self.sent_at = None
            self.load.judge(status, body)
            if close:
                self._drop(None)
                return
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sent_at is not None:
            self.load.fail("connection lost" if exc is None else type(exc).__name__)
        self.sent_at = None
        self.transport = None
        self.retry_at = time.monotonic() + 0.01

    def watch(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        """Called every 50 ms: time out a stuck answer, reconnect a lost connection."""
        if self.sent_at is not None and now - self.sent_at > self.load.timeout:
            self._drop("timeout")
        if self.transport is None and not self.connecting and now >= self.retry_at and not self.load._stopping.is_set():
            self.connect(loop)

    def _drop(self, reason: str | None) -> None:
        if reason is not None and self.sent_at is not None:
            self.load.fail(reason)
        self.sent_at = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def close(self) -> None:
        self.sent_at = None  # requests still out when the run ends are neither ok nor failed: not sent
        if self.transport is not None:
            self.transport.close()


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
