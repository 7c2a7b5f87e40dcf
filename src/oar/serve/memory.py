"""What all connections of a worker may buffer together, and giving freed memory back to the system.

Per-connection limits (``--max-body-bytes``, the connection cap) bound one client only as their product:
4096 connections x a 4 MiB body is 16 GiB. ``BodyBudget`` bounds request body bytes held by every
connection of a worker together (``--max-buffered-body-bytes``), as the HTTP/2 side bounds a
connection's by its flow-control window: the HTTP/1.1 front end charges each body byte as it is read and
releases it once its request is answered or dropped; when a read would pass the budget, the connections
holding the largest unfinished bodies are answered 503 (and their input dropped) until the total is back
under three quarters of it.

glibc's allocator keeps what Python frees: a body freed in the middle of the heap stays resident, and
after large blocks are freed its mmap threshold rises, so later ones come from the heap too. After a
flood the process would stay hundreds of MiB larger than it needs to be. ``give_back`` (``malloc_trim``)
returns free pages to the system; the listener calls it from its sweep once enough has been released.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

TRIM_AFTER_BYTES = 16 * 1024 * 1024  # released since the last trim before the next one is worth its cost


def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def give_back() -> None:
    """Return the allocator's free pages to the system (a no-op without glibc)."""
    if _TRIM is not None:
        _TRIM(0)


class BodyBudget:
    """Request body bytes held by all connections of one worker: charged as read, released when done."""

    __slots__ = ("freed", "limit", "low_water", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.low_water = limit * 3 // 4
        self.used = 0
        self.freed = 0  # released since the last trim

    def charge(self, size: int) -> bool:
        """Count ``size`` more bytes; False when the total is now over the limit."""
        self.used += size
        return self.used <= self.limit

    def release(self, size: int) -> None:
        self.used -= size
        self.freed += size

    def trim_if_due(self) -> None:
        """Give freed memory back once enough has been released since the last time (the listener's sweep)."""
        if self.freed >= TRIM_AFTER_BYTES:
            self.freed = 0
            give_back()
