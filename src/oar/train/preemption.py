"""SIGTERM means "this machine is being taken back": stop at the next safe point, leave resumable.

The handler only sets a flag. Inside ``fit`` the loop checks it after every
optimizer step, writes a checkpoint and raises ``TrainingPreempted``; outside it
(start-up, data and model build, checkpoint restore, the final test evaluation,
the weight save, the export) ``oar train`` checks it at every phase boundary
(``PreemptionWatch.phase``), where nothing half-done needs saving: the newest
checkpoint already holds everything, so the run is marked ``preempted`` and the
process exits 75 (``EX_TEMPFAIL``: "temporary failure, run me again").

A watchdog ends the process if the checkpoint is not written within the deadline,
so a stuck write never outlives the grace period the platform gives.

Phases are observable: every callable in ``PreemptionWatch.phase_observers`` is
called with the phase's name and the watch as the process enters it (tracing, or a
test that holds the process at one phase and signals it there). None are installed
by default.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar

from oar._core.errors import OarError

log = logging.getLogger("oar.train")

EXIT_PREEMPTED = 75  # EX_TEMPFAIL from sysexits.h: preempted, a checkpoint was written, resume the run
EXIT_DEADLINE = 76  # the checkpoint did not finish before the deadline; resume from the previous one


class TrainingPreempted(OarError):
    """Training stopped on SIGTERM at a safe point (after a checkpoint, or between phases); resume it."""

    http_status = 503

    def __init__(self, step: int, checkpoint: str | None, phase: str = "train") -> None:
        self.step = step
        self.checkpoint = checkpoint
        self.phase = phase
        self.run_id: str | None = None  # set by ``oar train`` once the run it stopped is known
        where = f"at step {step}" if phase == "train" else f"before phase '{phase}'"
        super().__init__(f"preempted {where}; checkpoint {checkpoint or '(none)'}")


class PreemptionWatch:
    """Installs a SIGTERM handler (main thread only) while entered, and restores the old one on exit.

    Watches nest: ``Trainer.fit`` reuses the innermost entered watch (``PreemptionWatch.active()``),
    so a signal that arrives before ``fit`` (``oar train`` enters a watch at start-up) is not lost.
    """

    _local: ClassVar[threading.local] = threading.local()  # one stack of entered watches per thread
    phase_observers: ClassVar[list[Callable[[str, PreemptionWatch], None]]] = []  # called on entering a phase

    def __init__(self, deadline_s: float = 30.0) -> None:
        self.deadline_s = deadline_s
        self.requested_at: float | None = None
        self._previous: Any = None
        self._installed = False

    @classmethod
    def _stack(cls) -> list[PreemptionWatch]:
        if not hasattr(cls._local, "stack"):
            cls._local.stack = []
        return cls._local.stack

    @classmethod
    def active(cls) -> PreemptionWatch | None:
        stack = cls._stack()
        return stack[-1] if stack else None

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def __enter__(self) -> PreemptionWatch:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        PreemptionWatch._stack().append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        stack = PreemptionWatch._stack()
        if self in stack:
            stack.remove(self)
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request()

    def request(self) -> None:
        """Ask for a preemption stop from code (another rank's flag, a test, a callback)."""
        if self.requested_at is None:
            self.requested_at = time.monotonic()

    def phase(
        self,
        name: str,
        checkpoint: str | None = None,
        agree: Callable[[bool], bool] | None = None,
    ) -> None:
        """Enter phase ``name``: raise ``TrainingPreempted`` if SIGTERM arrived during the previous one.

        ``agree`` makes the ranks of a data-parallel job decide together (``distributed.any_rank``),
        so no rank stops while another walks into a collective.
        """
        requested = agree(self.requested) if agree is not None else self.requested
        if requested:
            log.info("SIGTERM received; stopping before phase '%s'", name)
            raise TrainingPreempted(-1, checkpoint, name)
        log.debug("phase %s", name)
        for observer in PreemptionWatch.phase_observers:
            observer(name, self)

    def watchdog(self) -> threading.Timer:
        """A started timer that exits the process if the remaining deadline passes; cancel it when done."""
        left = self.deadline_s - (time.monotonic() - (self.requested_at or time.monotonic()))
        timer = threading.Timer(max(0.0, left), _deadline_passed, args=(self.deadline_s,))
        timer.daemon = True
        timer.start()
        return timer


def current_phase_watch() -> PreemptionWatch:
    """The active watch, or an unentered one (no handler: a library caller outside ``oar train``)."""
    return PreemptionWatch.active() or PreemptionWatch()


def _deadline_passed(deadline_s: float) -> None:
    log.error("checkpoint not written within the %.0f s preemption deadline; exiting", deadline_s)
    os._exit(EXIT_DEADLINE)
