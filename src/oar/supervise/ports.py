"""Free loopback ports for a new process, never one already recorded for another deployment.

The kernel picks each port (bind to port 0), so the numbers are free at that
moment; ``taken`` holds the ports the caller has stored for its other
deployments (which may be stopped just now, their ports briefly free, and
still theirs), and ports handed out by this process recently are held back
too, so two deployments created at the same moment never get the same one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable

from oar._core.errors import OarError

LOOPBACK = "127.0.0.1"
_RECENT_SECONDS = 60.0  # a port handed out stays reserved this long, until its process has bound it
_recent: dict[int, float] = {}
_lock = threading.Lock()


def allocate_ports(count: int, taken: Iterable[int] = (), host: str = LOOPBACK) -> list[int]:
    """``count`` distinct free TCP ports on ``host``, none in ``taken``.

    >>> rest, grpc = allocate_ports(2, taken=[8500, 8501])
    """
    avoid = set(taken)
    ports: list[int] = []
    with _lock:
        now = time.monotonic()
        for port, when in list(_recent.items()):
            if now - when > _RECENT_SECONDS:
                del _recent[port]
        for _ in range(count * 50):
            port = _kernel_port(host)
            if port in avoid or port in _recent or port in ports:
                continue
            ports.append(port)
            if len(ports) == count:
                for chosen in ports:
                    _recent[chosen] = now
                return ports
    raise OarError(f"could not find {count} free ports on {host}")


def release_ports(ports: Iterable[int]) -> None:
    """Hand ports back early (a deployment was removed): they may be given out again at once."""
    with _lock:
        for port in ports:
            _recent.pop(port, None)


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on (or holds) ``host:port``."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _kernel_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
