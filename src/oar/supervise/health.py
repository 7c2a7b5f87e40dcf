"""Is the served process ready? ``GET /v2/health/ready``, and waiting for it with a clear failure.

A process that dies while starting is reported at once, with the end of its
log (the reason is almost always there: a missing model, a port in use), not
after the readiness timeout.
"""

from __future__ import annotations

import time

import httpx

from oar._core.errors import OarError
from oar.supervise.spawner import Spawner

READY_PATH = "/v2/health/ready"


class StartFailedError(OarError):
    """The process exited, or never became ready, while starting; the message ends with its log tail."""

    def __init__(self, message: str, log_tail: str = "", exit_code: int | None = None) -> None:
        super().__init__(f"{message}\n--- last log lines ---\n{log_tail}" if log_tail else message)
        self.log_tail = log_tail
        self.exit_code = exit_code


def is_ready(endpoint: str, timeout: float = 1.0, token: str | None = None) -> bool:
    """True when ``endpoint`` (``http://host:port``) answers 200 on ``/v2/health/ready``."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.get(endpoint.rstrip("/") + READY_PATH, timeout=timeout, headers=headers).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(spawner: Spawner, endpoint: str, timeout: float = 60.0, interval: float = 0.05) -> float:
    """Block until ``endpoint`` is ready; seconds it took. Raises ``StartFailedError`` with the log tail
    when the process exits first or ``timeout`` passes (the process is then left running: stop it)."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        code = spawner.poll()
        if code is not None:
            raise StartFailedError(
                f"the process exited with code {code} before it was ready", spawner.log_tail(40), code
            )
        if is_ready(endpoint, timeout=min(1.0, max(deadline - time.monotonic(), 0.05))):
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise StartFailedError(f"not ready within {timeout:g} s at {endpoint}{READY_PATH}", spawner.log_tail(40))
        time.sleep(interval)
