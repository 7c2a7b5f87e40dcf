"""The Ray executor: each worker of an attempt is a named, detached Ray actor pinned to a node of its pool.

Nodes say which pool they belong to with a custom resource, ``{"pool:spot": 1}`` (``ray start
--resources='{"pool:spot": 1}'``, or the cluster launcher config); every actor asks for a sliver of it
and for its CPUs, and is pinned to the node the scheduler chose (``NodeAffinitySchedulingStrategy``).
An actor runs one rank of ``python -m oar.jobs.worker RUN_ID`` as a subprocess (dying with the actor:
``PR_SET_PDEATHSIG``), so SIGTERM → checkpoint → exit 75 works exactly as on the local executor;
a multi-worker attempt is torch DDP over the actors (``MASTER_ADDR`` of rank 0's node, gloo).

Actor names (``oar-<attempt>-<rank>``, namespace ``oar-jobs``) are the handle: a restarted scheduler
finds them with ``ray.get_actor``, and ``get_if_exists`` makes a repeated start a no-op.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from oar._core.processes import die_with_parent
from oar.jobs.executors.base import Launch, NodeUnavailable, NodeView, Status
from oar.jobs.progress import PROGRESS_ENV

NAMESPACE = "oar-jobs"
POOL_RESOURCE = "pool:"
_POLL_TIMEOUT_S = 10.0


@ray.remote(max_restarts=0, max_task_retries=0)
class AttemptWorker:
    """One rank of one attempt: starts the training process once and reports on it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def address(self) -> tuple[str, int]:
        """This node's IP and a free port (rank 0's: the DDP rendezvous)."""
        with socket.socket() as probe:
            probe.bind(("", 0))
            port = probe.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def start(self, command: list[str], env: dict[str, str], log: str) -> int:
        if self.process is None:
            with open(log, "ab") as out:
                self.process = subprocess.Popen(
                    command,
                    env={**os.environ, **env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=die_with_parent(os.getpid()),  # a lost node leaves no trainer behind
                )
        return self.process.pid

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str = "auto") -> None:
        if not ray.is_initialized():
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="WARNING")

    def start(self, launch: Launch) -> dict[str, Any]:
        """Start every rank; ``NodeUnavailable`` when it failed because a node of the launch is gone (Ray
        keeps listing a lost node as alive for a while, so a placement on one can be tried)."""
        try:
            return self._start(launch)
        except Exception as exc:
            self.kill({"actors": _names(launch)})
            dead = sorted(set(launch.nodes) - _alive_nodes())
            if dead:
                raise NodeUnavailable(dead, f"{type(exc).__name__}: {exc}") from exc
            raise

    def _start(self, launch: Launch) -> dict[str, Any]:
        names = _names(launch)
        actors = [self._actor(name, launch, node) for name, node in zip(names, launch.nodes, strict=True)]
        host, port = ray.get(actors[0].address.remote(), timeout=60)
        launch.directory.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", launch.module, launch.run_id]
        starts = []
        for rank, actor in enumerate(actors):
            env = {**launch.env, "OMP_NUM_THREADS": str(launch.cpus), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
            if launch.workers > 1:
                env |= {"RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": str(launch.workers)}
                env |= {"MASTER_ADDR": host, "MASTER_PORT": str(port)}
            if rank == 0:
                env[PROGRESS_ENV] = str(launch.directory / "progress.json")
            starts.append(actor.start.remote(command, env, str(launch.log)))
        ray.get(starts, timeout=120)
        return {"actors": names}

    def _actor(self, name: str, launch: Launch, node: str) -> Any:
        return AttemptWorker.options(
            name=name,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=launch.cpus,
            resources={POOL_RESOURCE + launch.pool: 0.01},
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        ).remote()

    def recover(self, launch: Launch, handle: dict[str, Any]) -> dict[str, Any] | None:
        """Start (again: a no-op for actors that exist) what the previous scheduler recorded."""
        try:
            return self.start(launch)
        except Exception:
            return None

    def poll(self, handle: dict[str, Any]) -> Status:
        codes: list[int | None] = []
        for actor in self._actors(handle):
            if actor is None:
                codes.append(-1)  # gone: its node was lost
                continue
            try:
                codes.append(ray.get(actor.poll.remote(), timeout=_POLL_TIMEOUT_S))
            except ray.exceptions.GetTimeoutError:
                codes.append(None)
            except ray.exceptions.RayError:
                codes.append(-1)
        if any(code == -1 for code in codes):
            self.kill(handle)  # the other ranks would wait for the lost one forever
            return Status(False, None)
        if all(code is not None for code in codes):
            self.kill(handle)  # release the actors' resources
            return Status(False, _combined([c for c in codes if c is not None]))
        crashed = [c for c in codes if c not in (None, 0, 75)]
        if crashed:
            self.kill(handle)
            return Status(False, crashed[0])
        return Status(True)

    def terminate(self, handle: dict[str, Any]) -> None:
        for actor in self._actors(handle):
            if actor is not None:
                with contextlib.suppress(ray.exceptions.RayError):
                    actor.signal.remote(signal.SIGTERM)

    def kill(self, handle: dict[str, Any]) -> None:
        for actor in self._actors(handle):
            if actor is not None:
                with contextlib.suppress(ray.exceptions.RayError, ValueError):
                    ray.kill(actor, no_restart=True)

    @staticmethod
    def _actors(handle: dict[str, Any]) -> list[Any]:
        found = []
        for name in handle.get("actors", []):
            try:
                found.append(ray.get_actor(name, namespace=NAMESPACE))
            except ValueError:
                found.append(None)
        return found


def _names(launch: Launch) -> list[str]:
    return [f"oar-{launch.attempt_id}-{rank}" for rank in range(launch.workers)]


def _alive_nodes() -> set[str]:
    return {node["NodeID"] for node in ray.nodes() if node.get("Alive")}


def _combined(codes: list[int]) -> int:
    """One exit code for all ranks: a crash wins, then a preemption, then success."""
    crashed = [c for c in codes if c not in (0, 75)]
    if crashed:
        return crashed[0]
    return 75 if 75 in codes else 0


class RayInventory:
    """Alive Ray nodes that carry a ``pool:NAME`` resource; ``remove`` is given by whoever can take a node away."""

    def __init__(self, remove: Callable[[str], None] | None = None) -> None:
        self._remove = remove

    def nodes(self) -> list[NodeView]:
        views = []
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            resources = node.get("Resources", {})
            pools = [key[len(POOL_RESOURCE) :] for key in resources if key.startswith(POOL_RESOURCE)]
            if pools:
                views.append(NodeView(node["NodeID"], pools[0], int(resources.get("CPU", 0))))
        return views

    def remove(self, node_id: str) -> None:
        if self._remove is not None:
            self._remove(node_id)
