"""The parent of one local attempt: ``python -m oar.jobs.executors.attempt_process DIR LOG -- COMMAND...``.

It runs in its own session, so the scheduler can be killed (even ``kill -9``) and restarted while
training goes on; everything the scheduler needs to find it again is in ``DIR``:

- ``owner``: created with ``O_EXCL`` before anything runs. The wrapper writes ``started``; a scheduler
  that recovers an attempt whose wrapper never got that far writes ``abandoned`` first, and then the
  wrapper exits without running anything. One of the two wins, so an attempt starts at most once.
- ``pid``: the wrapper's pid and start time (``/proc/PID/stat``), so a reused pid is not mistaken for it.
- ``stop``: a stop asked for before the wrapper could be signalled (``TERM`` or ``KILL``). The scheduler
  writes it, then looks for ``pid``; the wrapper writes ``pid``, then looks for ``stop``: whichever
  comes second sees the other, so a spot notice at any moment of start-up reaches the attempt.
- ``exit_code``: written atomically when the command ends; absent after a hard kill.

SIGTERM is forwarded to the command (it checkpoints and exits 75); the wrapper then records that code.
The command dies with the wrapper (``PR_SET_PDEATHSIG``): a wrapper killed on its own never leaves a
trainer behind to race the next attempt on the same run folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from oar._core.processes import die_with_parent

OWNER, PID, STOP, EXIT_CODE = "owner", "pid", "stop", "exit_code"
TERM, KILL = "TERM", "KILL"


def claim(directory: Path, who: str) -> bool:
    """Create ``owner`` holding ``who``; False if someone created it first."""
    try:
        fd = os.open(directory / OWNER, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(who)
    return True


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has finished
        return None
    return fields[19]


def write_atomic(path: Path, text: str) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(text)
    os.replace(staging, path)


def request_stop(directory: Path, how: str) -> None:
    """Leave a stop for a wrapper that may not have written its pid yet (a KILL is never downgraded)."""
    if pending_stop(directory) != KILL:
        write_atomic(directory / STOP, how)


def pending_stop(directory: Path) -> str | None:
    try:
        return (directory / STOP).read_text().strip() or None
    except OSError:
        return None


class _Forwarder:
    """The SIGTERM handler: remembers the request and passes it to the command once there is one."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.child is not None:
            self.child.send_signal(signal.SIGTERM)


def main(argv: list[str]) -> int:
    directory, log, command = Path(argv[0]), Path(argv[1]), argv[3:]
    if not claim(directory, "started"):
        return 0  # a recovering scheduler gave this attempt up before it began
    forward = _Forwarder()
    signal.signal(signal.SIGTERM, forward)  # before the pid is visible: no SIGTERM can find it unprepared
    write_atomic(directory / PID, f"{os.getpid()} {start_time(os.getpid())}")
    pending = pending_stop(directory)
    if pending == KILL:
        return 0  # no exit code: the attempt reads as killed
    if pending == TERM or forward.requested:  # stopped before it began: nothing to save
        write_atomic(directory / EXIT_CODE, str(128 + signal.SIGTERM))
        return 0
    with log.open("ab") as out:
        child = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(os.getpid()),
        )
        forward.child = child
        if forward.requested:  # the signal came while the command was being started
            child.send_signal(signal.SIGTERM)
        code = child.wait()
    write_atomic(directory / EXIT_CODE, str(code if code >= 0 else 128 - code))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
