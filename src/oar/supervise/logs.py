"""A process's log file with a size cap, and reading its last lines.

The child writes straight to the file (``O_APPEND``), never through a pipe:
a pipe would tie the child's life to the supervising process (it gets
``EPIPE`` when the supervisor restarts), and a file survives that. The cap is
kept the way ``logrotate``'s *copytruncate* keeps it: when the file is over
``max_bytes`` it is copied to ``<name>.1`` (older copies shift to ``.2`` ...)
and truncated in place; the child's appends then start again at offset 0.
Lines written between the copy and the truncate can be lost; that is the
price of not owning the child's output stream.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RotatingLog:
    """``path`` kept under ``max_bytes`` (checked at each ``enforce()``), with ``backups`` older copies."""

    path: Path
    max_bytes: int = 10 << 20
    backups: int = 2

    def open_for_child(self) -> int:
        """A file descriptor opened for appending, to hand to the child as stdout and stderr."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def enforce(self) -> bool:
        """Rotate when the file is over the cap; True when it did."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        if size <= self.max_bytes:
            return False
        for index in range(self.backups - 1, 0, -1):
            older = self._backup(index)
            if older.exists():
                older.replace(self._backup(index + 1))
        if self.backups:
            shutil.copyfile(self.path, self._backup(1))
        os.truncate(self.path, 0)
        return True

    def tail(self, lines: int = 50) -> str:
        """The last ``lines`` lines (reaching into the newest rotated copy when the file is short)."""
        kept: deque[str] = deque(maxlen=lines)
        for path in (self._backup(1), self.path):
            for line in _read_tail(path, lines):
                kept.append(line)
        return "\n".join(kept)

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")


def _read_tail(path: Path, lines: int, chunk: int = 1 << 16) -> list[str]:
    """The last ``lines`` lines of ``path``, reading from its end (a capped log can still be megabytes)."""
    try:
        with path.open("rb") as file:
            end = file.seek(0, os.SEEK_END)
            data = b""
            while end > 0 and data.count(b"\n") <= lines:
                start = max(0, end - chunk)
                file.seek(start)
                data = file.read(end - start) + data
                end = start
    except FileNotFoundError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:] if lines else []
