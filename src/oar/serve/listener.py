"""What both front ends (``oar.serve.http``, ``oar.serve.grpc_server``) do with their listening socket.

Bind (or adopt a ``SO_REUSEPORT`` socket from the worker supervisor), track open connections, and drain:
stop accepting, let each connection finish what it has in flight, abort what is left after the grace period.

It also enforces what no single connection can: a cap on open connections (past it a new connection gets
``refusal()`` and is closed, so established clients keep their sockets and the process keeps file
descriptors to spare), and one timer for every connection's timeouts. A connection that wants a timeout
sets ``deadline`` (loop time, 0 = none) and implements ``timed_out()``; a sweep every ``tick`` seconds
calls it once the deadline has passed. One sweep for all connections costs far less than a timer handle
per request, and ``now`` (the loop clock as of the last sweep) is cheap to read on the hot path.

Under connection pressure it sheds the connections that cost the most and do the least, as Envoy's
overload manager does. Connections that wait on their client are kept in the order they began waiting
(``wait_on``; ``busy`` takes one out while a request of it is handled), in two lines: those that have
not had a request answered yet (new ones, half-sent heads, slow bodies: what a flood is made of) and those
that have and now wait for the next one (keep-alive). At the cap a new connection takes the place of the
oldest of the first line, or else of the second, instead of being refused; over ``PRESSURE`` of the cap
the sweep closes those of either line that have waited ``pressure_timeout_s``. A flood of idle or half-sent
connections then holds the cap for no longer than the flood keeps up its rate, not for a whole header
timeout, and a keep-alive client in use (it waits milliseconds between requests) is not chosen: however
fast the flood turns the first line over, the second is only touched once the first is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import ssl
from typing import Protocol

from oar.serve.config import ConnectionLimits

log = logging.getLogger(__name__)


PRESSURE = 0.75  # share of the connection cap over which waiting connections get ``pressure_timeout_s``


class Connection(Protocol):
    transport: asyncio.Transport | None

    def shutdown(self) -> None:
        """Finish in-flight work, then close; close now when idle."""

    def evict(self) -> None:
        """Close now, to make room for other clients: the connection is waiting on its client."""


class _Connections(set):
    """The established connections; ``add`` (from ``connection_made``) also ends the accepted-not-made state,
    and ``discard`` the waiting one."""

    def __init__(self, opening: dict[object, float], *waiting: dict[object, float]) -> None:
        super().__init__()
        self._opening = opening
        self._waiting = waiting

    def add(self, connection: object) -> None:
        self._opening.pop(connection, None)
        super().add(connection)

    def discard(self, connection: object) -> None:
        self._opening.pop(connection, None)
        for line in self._waiting:
            line.pop(connection, None)
        super().discard(connection)


class _Refused(asyncio.Protocol):
    """A connection over the cap: write ``message`` (may be empty), close; nothing is read from it."""

    def __init__(self, message: bytes) -> None:
        self.message = message

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.message:
            transport.write(self.message)  # type: ignore[attr-defined]
        transport.close()


class Listener:
    """Subclasses say how to build a connection's protocol (``new_connection``); connections register themselves."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, limits: ConnectionLimits | None = None) -> None:
        self.ssl_context = ssl_context
        self.limits = limits or ConnectionLimits()
        # Accepted but not yet made (uvloop calls connection_made a loop turn later; TLS after the handshake):
        # they count against the cap, and leave when made, lost, or older than the handshake timeout.
        self._opening: dict[object, float] = {}
        # Connections waiting on their client, oldest first (a dict keeps insertion order): loop time since.
        self.unproven: dict[object, float] = {}  # no request of theirs answered yet
        self.idle: dict[object, float] = {}  # answered, waiting for the next request
        self.connections: set[Connection] = _Connections(self._opening, self.unproven, self.idle)
        self.refused = 0  # connections turned away at the cap
        self.evicted = 0  # waiting connections closed to make room (at the cap, or under pressure)
        self.now = 0.0
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def tick(self) -> float:
        """Seconds between sweeps: a quarter of the shortest timeout, within [0.05, 1]."""
        limits = self.limits
        shortest = min(
            limits.header_timeout_s,
            limits.body_timeout_s,
            limits.keepalive_timeout_s,
            limits.linger_s,
            limits.pressure_timeout_s,
        )
        return max(0.05, min(1.0, shortest / 4))

    def new_connection(self) -> asyncio.Protocol:
        raise NotImplementedError

    def refusal(self) -> bytes:
        """Bytes a connection over the cap gets before it is closed (a subclass speaks its protocol)."""
        return b""

    def wait_on(self, connection: object, answered: bool = False) -> None:
        """``connection`` now waits on its client, having had a request ``answered`` or not (a connection
        already waiting keeps its place)."""
        line = self.idle if answered else self.unproven
        if connection not in line:
            line[connection] = self.now

    def busy(self, connection: object) -> None:
        """A request of ``connection`` is being handled: it is not to be evicted."""
        self.unproven.pop(connection, None)
        self.idle.pop(connection, None)

    def swept(self) -> None:
        """Called at the end of every sweep (a subclass gives memory back, for one)."""

    def _evict(self, connection: Connection) -> None:
        self.connections.discard(connection)  # no longer counted, though its close completes a loop turn later
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:
            log.warning("closed %d waiting connection(s) to make room for others (connection pressure)", self.evicted)
        try:
            connection.evict()
        except Exception:
            log.exception("evicting a connection failed")
            if connection.transport is not None:
                connection.transport.abort()

    def _evict_oldest(self) -> bool:
        """Close the connection that has waited on its client longest, one never answered first; False when
        none waits."""
        for line in (self.unproven, self.idle):
            while line:
                connection = next(iter(line))
                if connection in self.connections:
                    self._evict(connection)  # type: ignore[arg-type]
                    return True
                del line[connection]  # already gone
        return False

    def _accept(self) -> asyncio.Protocol:
        if len(self.connections) + len(self._opening) >= self.limits.max_connections and not self._evict_oldest():
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning(
                    "refused %d connection(s): %d open is this worker's limit (--max-connections)",
                    self.refused,
                    self.limits.max_connections,
                )
            return _Refused(self.refusal())
        protocol = self.new_connection()
        self._opening[protocol] = self.now
        return protocol

    async def start(self, host: str, port: int, sock: socket.socket | None = None, backlog: int = 4096) -> None:
        raise_file_limit()
        loop = asyncio.get_running_loop()
        self.now = loop.time()
        tls = {"ssl": self.ssl_context}
        if self.ssl_context is not None:  # a handshake is the head of a TLS connection's first request
            tls["ssl_handshake_timeout"] = self.limits.header_timeout_s  # type: ignore[assignment]
        if sock is not None:
            self._server = await loop.create_server(self._accept, sock=sock, backlog=backlog, **tls)
        else:
            self._server = await loop.create_server(
                self._accept, host=host, port=port, backlog=backlog, reuse_address=True, **tls
            )
        self._sweeper = loop.call_later(self.tick, self._sweep)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = self.now = loop.time()
        for connection in list(self.connections):
            deadline = getattr(connection, "deadline", 0.0)
            if deadline and now >= deadline:
                try:
                    connection.timed_out()  # type: ignore[attr-defined]
                except Exception:  # one connection's bug must not stop the timer for all of them
                    log.exception("timing out a connection failed")
                    if connection.transport is not None:
                        connection.transport.abort()
                    self.connections.discard(connection)
        if self._opening:
            stale = now - self.limits.header_timeout_s - 2 * self.tick
            for protocol in [p for p, at in self._opening.items() if at < stale]:
                del self._opening[protocol]  # a TLS handshake that failed: connection_made never came
        if len(self.connections) + len(self._opening) > PRESSURE * self.limits.max_connections:
            self._shed(now - self.limits.pressure_timeout_s)
        self.swept()
        self._sweeper = loop.call_later(self.tick, self._sweep)

    def _shed(self, cutoff: float) -> None:
        """Under pressure: close the connections that have waited on their client since before ``cutoff``."""
        for line in (self.unproven, self.idle):
            while line:
                connection, since = next(iter(line.items()))
                if since > cutoff:
                    break
                if connection in self.connections:
                    self._evict(connection)  # type: ignore[arg-type]
                else:
                    del line[connection]

    async def shutdown(self, grace: float) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()


def raise_file_limit() -> None:
    """Lift the soft open-files limit to the hard one, as nginx's ``worker_rlimit_nofile`` does.

    Each connection holds a descriptor; a soft limit of 1024 (a common default) would run out long before
    ``--max-connections``, and a process out of descriptors cannot even accept to refuse.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):  # not allowed here: the soft limit stays
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
