"""One trainer per run folder: an exclusive ``flock`` on ``FOLDER/trainer.lock`` held while training.

Two processes training the same run would interleave checkpoints, progress and weights. Whoever
trains a run holds the lock for as long as it lives (the kernel drops it when the process dies,
however it dies), and a second trainer waits for it: a replacement attempt started while its killed
predecessor is still going down begins only once that one is gone, and a stale trainer never writes
beside a live one.

>>> with FolderLock(run_folder, wait_s=120):
...     train()
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

from oar._core.errors import OarError

log = logging.getLogger("oar.train")
LOCK_FILE = "trainer.lock"


class FolderBusyError(OarError):
    """Another live process holds the folder's lock past the wait."""

    http_status = 409


class FolderLock:
    """Exclusive, process-wide: enter it once per process; the holder's pid is written for the message."""

    def __init__(self, folder: str | Path, wait_s: float = 120.0, poll_s: float = 0.2) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.wait_s, self.poll_s = wait_s, poll_s
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        deadline, announced = time.monotonic() + self.wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise FolderBusyError(
                        f"{self.path.parent} is being trained by another process (pid {holder}); "
                        "stop it, or wait for it to finish"
                    ) from None
                if not announced:
                    log.warning("waiting for pid %s, which still trains in %s", holder, self.path.parent)
                    announced = True
                time.sleep(self.poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the lock
            self._fd = None
