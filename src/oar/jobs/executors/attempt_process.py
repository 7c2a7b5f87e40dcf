"""The parent of one local attempt: ``python -m oar.jobs.executors.attempt_process DIR LOG -- COMMAND...``.

It runs in its own session, so the scheduler can be killed (even ``kill -9``) and restarted while
training goes on; everything the scheduler needs to find it again is in ``DIR``:

- ``owner``: created with ``O_EXCL`` before anything runs. The wrapper writes ``started``; a scheduler
  that recovers an attempt whose wrapper never got that far writes ``abandoned`` first, and then the
  wrapper exits without running anything. One of the two wins, so an attempt starts at most once.
- ``pid``: the wrapper's pid and start time (``/proc/PID/stat``), so a reused pid is not mistaken for it.
- ``exit_code``: written atomically when the command ends; absent after a hard kill.

SIGTERM is forwarded to the command (it checkpoints and exits 75); the wrapper then records that code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

OWNER, PID, EXIT_CODE = "owner", "pid", "exit_code"


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


def main(argv: list[str]) -> int:
    directory, log, command = Path(argv[0]), Path(argv[1]), argv[3:]
    if not claim(directory, "started"):
        return 0  # a recovering scheduler gave this attempt up before it began
    write_atomic(directory / PID, f"{os.getpid()} {start_time(os.getpid())}")
    with log.open("ab") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
        code = child.wait()
    write_atomic(directory / EXIT_CODE, str(code if code >= 0 else 128 - code))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
