"""What both front ends (``oar.serve.http``, ``oar.serve.grpc_server``) do with their listening socket.

Bind (or adopt a ``SO_REUSEPORT`` socket from the worker supervisor), track open connections, and drain:
stop accepting, let each connection finish what it has in flight, abort what is left after the grace period.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Protocol


class Connection(Protocol):
    transport: asyncio.Transport | None

    def shutdown(self) -> None:
        """Finish in-flight work, then close; close now when idle."""


class Listener:
    """Subclasses say how to build a connection's protocol (``new_connection``); connections register themselves."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    def new_connection(self) -> asyncio.Protocol:
        raise NotImplementedError

    async def start(self, host: str, port: int, sock: socket.socket | None = None, backlog: int = 4096) -> None:
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(
                self.new_connection, sock=sock, ssl=self.ssl_context, backlog=backlog
            )
        else:
            self._server = await loop.create_server(
                self.new_connection, host=host, port=port, ssl=self.ssl_context, backlog=backlog, reuse_address=True
            )

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
