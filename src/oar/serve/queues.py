"""What a model's request queue (``DynamicBatcher``, ``GenerationQueue``) does when its model is unloaded.

Both refuse new requests once closed, let the queued and running ones finish, and then let their worker
threads go; the repository closes and drains either kind the same way.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor


class DrainableQueue:
    """``close()`` then ``await drain()``; a subclass says when it is ``busy`` and sets ``_executor``."""

    _closed: bool = False
    _executor: ThreadPoolExecutor | None = None
    _DRAIN_POLL_S = 0.005

    @property
    def busy(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Refuse new requests; queued and running ones still finish (see ``drain``)."""
        self._closed = True

    async def drain(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or running; ``False`` if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(self._DRAIN_POLL_S)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        return True
