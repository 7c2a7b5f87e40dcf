"""ModelClient retries an inference whose connection was reset before any answer, boundedly, and never a timeout.

The peer is a real socket server that resets its first connections (as a replica killed mid-request does) and
then answers like an Open Inference Protocol server.
"""

from __future__ import annotations

import json
import socket
import struct
import threading

import numpy as np
import pytest

from oar._core.errors import ConnectionFailedError, ServerUnreachableError
from oar.client import ModelClient, RetryPolicy

ANSWER = json.dumps(
    {"model_name": "m", "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}]}
).encode()


class Peer:
    """Resets the first ``resets`` connections after reading a request; answers the later ones (or stays silent)."""

    def __init__(self, resets: int, silent: bool = False) -> None:
        self.resets, self.silent, self.connections = resets, silent, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            conn.recv(65536)
            if self.silent:
                continue  # never answers: the client's timeout ends it
            if self.connections <= self.resets:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()  # RST, no answer
                continue
            head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(ANSWER)}\r\n\r\n"
            conn.sendall(head.encode() + ANSWER)
            conn.close()

    def close(self) -> None:
        self.listener.close()


X = {"x": np.ones((1, 2), dtype=np.float32)}


def test_a_reset_connection_is_retried_until_an_answer() -> None:
    peer = Peer(resets=2)
    with ModelClient(f"http://127.0.0.1:{peer.port}", timeout=5, retry=RetryPolicy(backoff_s=0.01)) as client:
        assert client.infer("m", X)["y"].tolist() == [[1.0, 2.0]]
    assert peer.connections == 3
    peer.close()


def test_retries_are_bounded() -> None:
    peer = Peer(resets=100)
    client = ModelClient(f"http://127.0.0.1:{peer.port}", timeout=5, retry=RetryPolicy(attempts=3, backoff_s=0.01))
    with client, pytest.raises(ConnectionFailedError, match="cannot reach"):
        client.infer("m", X)
    assert peer.connections == 3
    peer.close()


def test_a_timeout_is_not_retried() -> None:
    peer = Peer(resets=0, silent=True)
    with ModelClient(f"http://127.0.0.1:{peer.port}", timeout=0.5) as client:
        with pytest.raises(ServerUnreachableError, match="in time") as failure:
            client.infer("m", X)
        assert not isinstance(failure.value, ConnectionFailedError)
    assert peer.connections == 1
    peer.close()
