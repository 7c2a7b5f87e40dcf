"""What the scheduler needs from an executor: start an attempt, poll it, stop it softly or hard.

An executor holds no state the scheduler cannot rebuild: ``start`` returns a JSON-able handle the
scheduler stores with the attempt, and every other call takes that handle back, so a restarted
scheduler adopts attempts that outlived it. ``start`` must be idempotent for one attempt id: a
scheduler that died between recording an attempt and starting it calls ``recover`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Launch:
    """One attempt of a job: ``workers`` ranks of ``python -m oar.jobs.worker RUN_ID`` on ``nodes``."""

    attempt_id: str
    run_id: str
    workers: int
    cpus: int
    pool: str
    nodes: tuple[str, ...]  # one entry per worker
    directory: Path  # the attempt's folder: progress file, wrapper state
    log: Path  # the job's log, appended to by every attempt
    env: dict[str, str]
    module: str = "oar.jobs.worker"  # what one rank runs: ``python -m MODULE RUN_ID`` (see ``oar.jobs.kinds``)


@dataclass(frozen=True)
class Status:
    """``running``; else ``exit_code`` (None: the attempt vanished without one: killed, node lost)."""

    running: bool
    exit_code: int | None = None


class NodeUnavailable(RuntimeError):
    """``start`` failed because a node of the launch is gone: a lost placement, not a crash of the job."""

    def __init__(self, nodes: list[str], detail: str) -> None:
        self.nodes = nodes
        super().__init__(f"node {', '.join(nodes)} unavailable: {detail}")


@dataclass(frozen=True)
class NodeView:
    id: str
    pool: str
    cpus: int


class Executor(Protocol):
    name: str

    def start(self, launch: Launch) -> dict[str, Any]: ...

    def recover(self, launch: Launch, handle: dict[str, Any]) -> dict[str, Any] | None:
        """After a scheduler restart: the handle of the attempt if it started (or starts now), else None."""
        ...

    def poll(self, handle: dict[str, Any]) -> Status: ...

    def terminate(self, handle: dict[str, Any]) -> None:
        """SIGTERM to every rank: checkpoint and exit 75."""
        ...

    def kill(self, handle: dict[str, Any]) -> None:
        """Hard stop, no checkpoint (a node vanishing)."""
        ...


class Inventory(Protocol):
    """The nodes jobs can be placed on, per pool."""

    def nodes(self) -> list[NodeView]: ...

    def remove(self, node_id: str) -> None:
        """The node is gone (preempted); a real cloud does this itself."""
        ...
