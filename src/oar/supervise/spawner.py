"""The one interface for everything the platform starts and supervises (modelled on JupyterHub's Spawner).

A spawner starts one unit of work (a process today, a Ray actor later), says
whether it still runs, stops it, and describes itself as a JSON-serialisable
``state()`` that the caller stores (in its database). After the caller's own
process restarts, ``spawner_from_state(stored)`` re-adopts the unit: it is
either still the very same running thing, or it is reported gone. The
spawner keeps no database of its own.

    spawner = LocalProcessSpawner(ProcessSpec(argv=["sleep", "60"], log_path="/tmp/sleep.log"))
    row.state = spawner.start()          # persist it
    ...
    spawner = spawner_from_state(row.state)
    if spawner.poll() is not None: ...   # it is gone: restart or report
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Final

from oar._core.errors import InvalidInputError

#: ``poll()``'s answer for a unit that is gone without a knowable exit code (re-adopted, or never started).
EXIT_UNKNOWN: Final = -255

_BACKENDS: dict[str, type[Spawner]] = {}
_LAZY = {"ray": "oar.supervise.ray_spawner"}  # backends whose module is imported when a state needs it


class Spawner(ABC):
    """Start / poll / stop one unit of work; ``state()`` is all a caller needs to re-adopt it later.

    Backends set ``kind`` (stored in the state) and register themselves by subclassing.
    """

    kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            _BACKENDS[cls.kind] = cls

    @abstractmethod
    def start(self) -> dict[str, Any]:
        """Start the unit and return its state (persist it: it is what re-adoption needs)."""

    @abstractmethod
    def poll(self) -> int | None:
        """None while it runs; else its exit code (negative: killed by that signal; ``EXIT_UNKNOWN``)."""

    @abstractmethod
    def stop(self, timeout: float = 10.0) -> int | None:
        """Ask it to stop, force it after ``timeout`` seconds; return the exit code."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """A JSON-serialisable description, including ``kind``, from which ``from_state`` re-adopts."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any]) -> Spawner:
        """Re-adopt from a stored state: the same unit if it still runs, else one whose ``poll()`` says gone."""

    def log_tail(self, lines: int = 50) -> str:
        """The last ``lines`` lines the unit wrote (empty when the backend keeps no log)."""
        return ""


def spawner_from_state(state: dict[str, Any]) -> Spawner:
    """Re-adopt whatever backend wrote ``state`` (its ``kind`` field picks the class)."""
    kind = state.get("kind") if isinstance(state, dict) else None
    if isinstance(kind, str) and kind in _LAZY and kind not in _BACKENDS:
        importlib.import_module(_LAZY[kind])  # registers it; ray is imported only where a cluster is used
    backend = _BACKENDS.get(kind) if isinstance(kind, str) else None
    if backend is None:
        known = ", ".join(sorted(set(_BACKENDS) | set(_LAZY))) or "none"
        raise InvalidInputError(f"stored spawner state has unknown kind {kind!r}; known kinds: {known}")
    return backend.from_state(state)
