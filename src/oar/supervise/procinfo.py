"""Who a pid is: the kernel's start time of a process, so a stored pid is never mistaken for a recycled one.

A pid alone is not an identity: after the process exits the kernel hands the
number to the next process. ``/proc/<pid>/stat`` field 22 (start time in clock
ticks since boot) together with the boot id names one process for the life of
the machine, which is what re-adopting a process from a stored state needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessIdentity:
    """A pid plus what makes it unique: ``boot_id`` and ``start_ticks`` (``/proc/<pid>/stat`` field 22)."""

    pid: int
    start_ticks: int
    boot_id: str

    @classmethod
    def of(cls, pid: int, zombie_ok: bool = False) -> ProcessIdentity | None:
        """The identity of the live process ``pid``, or None when there is none (or only its zombie)."""
        stat = _stat(pid)
        if stat is None or (stat[0] == "Z" and not zombie_ok):
            return None
        return cls(pid, int(stat[19]), boot_id())

    def alive(self) -> bool:
        """True while this very process runs: same pid, same start time, same boot, not a zombie."""
        return ProcessIdentity.of(self.pid) == self


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: start times still tell processes apart within one boot
        return ""


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` from field 3 (state) on; the command name may hold spaces and ')'."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def reap(pid: int) -> int | None:
    """Collect the exit status of ``pid`` if it is our exited child (else None): no zombie is left behind."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)
