"""SIGTERM means "this machine is being taken back": finish the step, checkpoint, leave resumable.

The handler only sets a flag; the fit loop checks it after every optimizer step,
writes a checkpoint and raises ``TrainingPreempted``, which ``oar train`` turns
into exit code 75 (``EX_TEMPFAIL``: "temporary failure, run me again").
A watchdog ends the process if the checkpoint is not written within the deadline,
so a stuck write never outlives the grace period the platform gives.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

from oar._core.errors import OarError

log = logging.getLogger("oar.train")

EXIT_PREEMPTED = 75  # EX_TEMPFAIL from sysexits.h: preempted, a checkpoint was written, resume the run
EXIT_DEADLINE = 76  # the checkpoint did not finish before the deadline; resume from the previous one


class TrainingPreempted(OarError):
    """Training stopped on SIGTERM after writing a checkpoint; resume it to continue."""

    http_status = 503

    def __init__(self, step: int, checkpoint: str | None) -> None:
        self.step = step
        self.checkpoint = checkpoint
        super().__init__(f"preempted at step {step}; checkpoint {checkpoint or '(none: no checkpoint directory)'}")


class PreemptionWatch:
    """Installs a SIGTERM handler for the duration of ``fit`` (main thread only) and restores the old one."""

    def __init__(self, deadline_s: float = 30.0) -> None:
        self.deadline_s = deadline_s
        self.requested_at: float | None = None
        self._previous: Any = None
        self._installed = False

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def __enter__(self) -> PreemptionWatch:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested_at is None:
            self.requested_at = time.monotonic()

    def request(self) -> None:
        """Ask for a preemption stop from code (another rank's flag, a test, a callback)."""
        if self.requested_at is None:
            self.requested_at = time.monotonic()

    def watchdog(self) -> threading.Timer:
        """A started timer that exits the process if the remaining deadline passes; cancel it when done."""
        left = self.deadline_s - (time.monotonic() - (self.requested_at or time.monotonic()))
        timer = threading.Timer(max(0.0, left), _deadline_passed, args=(self.deadline_s,))
        timer.daemon = True
        timer.start()
        return timer


def _deadline_passed(deadline_s: float) -> None:
    log.error("checkpoint not written within the %.0f s preemption deadline; exiting", deadline_s)
    os._exit(EXIT_DEADLINE)
