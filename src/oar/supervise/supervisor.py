"""``Supervisor``: keeps spawners running, restarting crashed ones with capped exponential back-off.

One background thread polls every watched spawner. A unit that exits is
restarted after ``initial_delay * factor**(failures-1)`` seconds (capped at
``max_delay``); a unit that then stays up ``stable_after`` seconds has its
failure count reset, so a crash a day later restarts quickly again. Every
change of status calls ``on_change(key, record)`` with a JSON-serialisable
record (status, counts, and the spawner's state) for the caller to persist;
the supervisor keeps nothing on disk itself.

    supervisor = Supervisor(on_change=lambda key, record: db.save(key, record))
    supervisor.watch("dep-1", spawner, ready=lambda: is_ready(endpoint))
    supervisor.start()
    ...
    supervisor.close()   # stops watching; the processes keep running (stop them with unwatch)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from oar._core.errors import OarError
from oar.supervise.spawner import Spawner

log = logging.getLogger(__name__)

OnChange = Callable[[str, dict[str, Any]], None]


class Status(StrEnum):
    STARTING = "starting"  # started, its readiness check has not passed yet
    RUNNING = "running"
    BACKOFF = "backoff"  # exited; waiting to be restarted at next_start_at
    FAILED = "failed"  # exited more than max_restarts times in a row: given up
    STOPPED = "stopped"  # stopped on purpose (unwatch)


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a unit that exited, and when to give up."""

    initial_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    stable_after: float = 60.0  # up this long (and ready): the failure count starts again from zero
    start_timeout: float = 60.0  # not ready this long after a start: stopped and counted as a failure
    max_restarts: int | None = None  # consecutive failures before giving up; None = never give up

    def delay(self, failures: int) -> float:
        """Back-off before the restart that follows the ``failures``-th consecutive failure."""
        return min(self.max_delay, self.initial_delay * self.factor ** max(failures - 1, 0))


@dataclass
class _Entry:
    key: str
    spawner: Spawner
    ready: Callable[[], bool] | None
    policy: RestartPolicy
    status: Status = Status.STARTING
    restarts: int = 0
    failures: int = 0  # consecutive
    last_exit_code: int | None = None
    next_start_at: float | None = None  # wall clock, for the record
    up_since: float = field(default_factory=time.monotonic)
    next_start_mono: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock)

    def record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": str(self.status),
            "restarts": self.restarts,
            "consecutive_failures": self.failures,
            "last_exit_code": self.last_exit_code,
            "next_start_at": self.next_start_at,
            "spawner": self.spawner.state(),
        }


class Supervisor:
    """Polls its spawners every ``interval`` seconds in a daemon thread (``start()``), or on ``tick()``."""

    def __init__(
        self, on_change: OnChange | None = None, policy: RestartPolicy | None = None, interval: float = 0.5
    ) -> None:
        self.on_change = on_change
        self.policy = policy or RestartPolicy()
        self.interval = interval
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what the caller uses ---------------------------------------------------------------------
    def watch(
        self,
        key: str,
        spawner: Spawner,
        ready: Callable[[], bool] | None = None,
        policy: RestartPolicy | None = None,
    ) -> dict[str, Any]:
        """Supervise a started (or re-adopted) spawner; one that is already gone is restarted at once.

        ``ready`` (e.g. an HTTP health check) decides when a (re)started unit counts as running.
        """
        entry = _Entry(key, spawner, ready, policy or self.policy)
        with self._lock:
            if key in self._entries:
                raise OarError(f"'{key}' is already supervised")
            self._entries[key] = entry
        with entry.lock:
            code = spawner.poll()
            if code is not None:
                entry.last_exit_code = code
                self._schedule(entry, delay=0.0)
            elif ready is None or ready():
                entry.status = Status.RUNNING
            self._changed(entry)
            return entry.record()

    def unwatch(self, key: str, stop: bool = True, timeout: float = 10.0) -> dict[str, Any]:
        """Stop supervising ``key``; with ``stop`` also stop the unit (graceful, then forced)."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            raise OarError(f"'{key}' is not supervised; supervised: {', '.join(self.watched()) or 'none'}")
        with entry.lock:
            if stop:
                entry.last_exit_code = entry.spawner.stop(timeout)
                entry.status = Status.STOPPED
                entry.next_start_at = None
                self._changed(entry)
            return entry.record()

    def record(self, key: str) -> dict[str, Any]:
        """The current record of ``key`` (what ``on_change`` last reported)."""
        entry = self._entry(key)
        with entry.lock:
            return entry.record()

    def notify(self, key: str) -> None:
        """Report ``key``'s record again (its spawner changed, e.g. a new version to start next time)."""
        entry = self._entry(key)
        with entry.lock:
            self._changed(entry)

    def log_tail(self, key: str, lines: int = 50) -> str:
        return self._entry(key).spawner.log_tail(lines)

    def watched(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def start(self) -> Supervisor:
        """Poll in a daemon thread until ``close()``."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="oar-supervisor", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop polling. The units keep running: a new supervisor can re-adopt them from their states."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Supervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the loop ---------------------------------------------------------------------------------
    def tick(self) -> None:
        """One pass over every spawner (the thread calls this; an asyncio caller may run it in a thread)."""
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            with entry.lock:
                if self._entries.get(entry.key) is entry:
                    self._check(entry)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # a bug in one check must not end supervision of everything
                log.exception("supervisor pass failed")

    def _check(self, entry: _Entry) -> None:
        now = time.monotonic()
        if entry.status in (Status.FAILED, Status.STOPPED):
            return
        if entry.status is Status.BACKOFF:
            if now >= entry.next_start_mono:
                self._restart(entry)
            return
        code = entry.spawner.poll()
        if code is not None:
            log.warning("'%s' exited with code %s", entry.key, code)
            entry.last_exit_code = code
            entry.failures += 1
            self._schedule(entry)
        elif entry.status is Status.STARTING:
            if entry.ready is None or entry.ready():
                entry.status = Status.RUNNING
                entry.up_since = now
                self._changed(entry)
            elif now - entry.up_since > entry.policy.start_timeout:
                log.warning("'%s' not ready after %.0f s: stopping it", entry.key, entry.policy.start_timeout)
                entry.last_exit_code = entry.spawner.stop()
                entry.failures += 1
                self._schedule(entry)
        elif entry.failures and now - entry.up_since >= entry.policy.stable_after:
            entry.failures = 0
            self._changed(entry)

    def _schedule(self, entry: _Entry, delay: float | None = None) -> None:
        limit = entry.policy.max_restarts
        if limit is not None and entry.failures > limit:
            entry.status = Status.FAILED
            entry.next_start_at = None
        else:
            wait = entry.policy.delay(entry.failures) if delay is None else delay
            entry.status = Status.BACKOFF
            entry.next_start_mono = time.monotonic() + wait
            entry.next_start_at = time.time() + wait
        self._changed(entry)

    def _restart(self, entry: _Entry) -> None:
        try:
            entry.spawner.start()
        except OarError as exc:
            log.warning("restarting '%s' failed: %s", entry.key, exc)
            entry.failures += 1
            self._schedule(entry)
            return
        entry.restarts += 1
        entry.up_since = time.monotonic()
        entry.next_start_at = None
        entry.status = Status.STARTING
        if entry.ready is None:
            entry.status = Status.RUNNING
        self._changed(entry)

    def _changed(self, entry: _Entry) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(entry.key, entry.record())
        except Exception:  # the caller's store failing must not stop supervision
            log.exception("on_change for '%s' failed", entry.key)

    def _entry(self, key: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            raise OarError(f"'{key}' is not supervised; supervised: {', '.join(self.watched()) or 'none'}")
        return entry
