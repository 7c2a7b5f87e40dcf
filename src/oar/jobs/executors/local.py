"""The local executor: each attempt is a process tree on this machine, nodes are CPU slots.

Each attempt runs under ``attempt_process`` (its own session, its state in the attempt's folder), so
attempts outlive a scheduler restart or ``kill -9`` and are adopted by the next scheduler. Nodes of
the pools are rows in the hub database (``LocalInventory``); the autoscaler adds and removes them and
the preemption source takes them away.

An attempt is every process whose environment names its progress file: a hard stop, or an attempt
found vanished, kills all of them, so nothing of an old attempt trains beside the next one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from oar.jobs.executors import attempt_process as ap
from oar.jobs.executors.base import Launch, NodeView, Status
from oar.jobs.progress import PROGRESS_ENV
from oar.jobs.store import JobStore


def worker_command(launch: Launch) -> list[str]:
    command = [sys.executable, "-m", launch.module, launch.run_id]
    return command + (["--nproc", str(launch.workers)] if launch.workers > 1 else [])


class LocalExecutor:
    name = "local"

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # reaped in poll, so none stays a zombie

    def start(self, launch: Launch) -> dict[str, Any]:
        launch.directory.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **launch.env,
            PROGRESS_ENV: str(launch.directory / "progress.json"),
            "OMP_NUM_THREADS": str(launch.cpus),
        }
        command = [sys.executable, "-m", "oar.jobs.executors.attempt_process"]
        command += [str(launch.directory), str(launch.log), "--", *worker_command(launch)]
        process = subprocess.Popen(
            command, env=env, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        self._children[process.pid] = process
        return {"dir": str(launch.directory), "pid": process.pid}

    def recover(self, launch: Launch, handle: dict[str, Any]) -> dict[str, Any] | None:
        directory = launch.directory
        directory.mkdir(parents=True, exist_ok=True)
        if ap.claim(directory, "abandoned"):
            return None  # the wrapper never ran and now never will
        if (directory / ap.OWNER).read_text() == "abandoned":
            return None
        return {"dir": str(directory), **handle}

    def poll(self, handle: dict[str, Any]) -> Status:
        directory = Path(handle["dir"])
        child = self._children.get(int(handle.get("pid", -1)))
        if child is not None and child.poll() is not None:
            del self._children[child.pid]
        code = _read(directory / ap.EXIT_CODE)
        if code is not None:
            return Status(False, int(code))
        pid, started = _pid(directory)
        if pid is None:  # the wrapper has not written its pid yet: is it still starting?
            if _read(directory / ap.OWNER) == "abandoned":
                return Status(False, None)
            if child is not None:
                return Status(child.returncode is None, None)
            # started by a previous scheduler: its process, found by pid and by the attempt in its environment
            return Status(_is_attempt_process(int(handle.get("pid", -1)), directory), None)
        if ap.start_time(pid) == started:
            return Status(True)
        code = _read(directory / ap.EXIT_CODE)  # it may have finished between the two reads
        if code is None:  # the wrapper was killed on its own: take whatever it left running with it
            kill_attempt_processes(directory)
        return Status(False, int(code) if code is not None else None)

    def terminate(self, handle: dict[str, Any]) -> None:
        """SIGTERM now if the wrapper runs, else when it starts (the ``stop`` file it reads after its pid)."""
        directory = Path(handle["dir"])
        ap.request_stop(directory, ap.TERM)
        pid, started = _pid(directory)
        if pid is not None and ap.start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def kill(self, handle: dict[str, Any]) -> None:
        directory = Path(handle["dir"])
        ap.request_stop(directory, ap.KILL)
        if ap.claim(directory, "abandoned"):
            return  # the wrapper had not begun; now it never will
        pid, started = _pid(directory)
        if pid is not None and ap.start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):  # the wrapper leads its own session: the tree goes
                os.killpg(pid, signal.SIGKILL)
        kill_attempt_processes(directory)


class LocalInventory:
    """Nodes of locally managed pools, as rows in the hub database."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def nodes(self) -> list[NodeView]:
        return [NodeView(n.id, n.pool, n.cpus) for n in self.store.nodes(states=("up",))]

    def add(self, pool: str, cpus: int) -> NodeView:
        node = self.store.add_node(pool, cpus)
        return NodeView(node.id, node.pool, node.cpus)

    def remove(self, node_id: str) -> None:
        self.store.set_node_state(node_id, "gone")


def _marker(directory: Path) -> bytes:
    return f"{PROGRESS_ENV}={directory / 'progress.json'}".encode()


def _is_attempt_process(pid: int, directory: Path) -> bool:
    try:
        return pid > 0 and _marker(directory) in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def kill_attempt_processes(directory: Path) -> int:
    """SIGKILL every process of the attempt in ``directory`` (its environment names the attempt's progress
    file, inherited by the trainer and any rank it starts); how many were found."""
    marker = _marker(directory)
    found = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if marker in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                found += 1
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _pid(directory: Path) -> tuple[int | None, str | None]:
    text = _read(directory / ap.PID)
    if text is None:
        return None, None
    pid, started = text.split()
    return int(pid), started
