"""``RaySpawner``: a process owned by a detached, named Ray actor on whichever node of a Ray cluster fits.

The actor (``ProcessHost``) runs a ``LocalProcessSpawner`` on its node, so the unit is the same
process with the same log, environment and graceful stop as a local one; the child gets SIGKILL if
the actor dies (``PR_SET_PDEATHSIG``), so a lost node leaves no orphan serving on its port.

Placement is Ray's: the actor asks for ``resources`` (custom resources a node declares, e.g. ``ray
start --resources='{"oar-serve": 4}'``: at most four replicas there) with the ``SPREAD`` strategy,
or is pinned to a node (``node_id``). ``{node_ip}`` in the command line is replaced on the node by
its address (a server binds there so that a balancer on another machine reaches it).

The actor's name (namespace ``oar-serve``) is the handle: ``from_state`` finds it with
``ray.get_actor`` after the caller restarts; a name with no live actor is a unit that is gone. The
run directory (log, token files) must be on storage every node sees, as for the jobs' runs.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from oar._core.errors import InvalidInputError, OarError
from oar.supervise.local import LocalProcessSpawner, ProcessSpec
from oar.supervise.logs import RotatingLog
from oar.supervise.spawner import EXIT_UNKNOWN, Spawner

NAMESPACE = "oar-serve"
NODE_IP = "{node_ip}"
_CALL_TIMEOUT_S = 10.0
_CONNECT = threading.Lock()


@ray.remote(max_restarts=0, max_task_retries=0, num_cpus=0)
class ProcessHost:
    """One process on this actor's node; stopping or losing the actor ends it."""

    def __init__(self) -> None:
        self.spawner: LocalProcessSpawner | None = None

    def where(self) -> dict[str, str]:
        return {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address()}

    def start(self, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        where = self.where()
        argv = [arg.replace(NODE_IP, where["node_ip"]) for arg in spec["argv"]]
        filled = ProcessSpec.model_validate({**spec, "argv": argv, "env": {**spec.get("env", {}), **env}})
        self.spawner = LocalProcessSpawner(filled, die_with_parent=True)
        state = self.spawner.start()
        return {**where, "pid": state["pid"]}

    def poll(self) -> int | None:
        return EXIT_UNKNOWN if self.spawner is None else self.spawner.poll()

    def stop(self, timeout: float) -> int | None:
        return None if self.spawner is None else self.spawner.stop(timeout)


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` once per process (``None``/``"auto"``: the local one)."""
    with _CONNECT:  # replicas start from several threads at once
        if not ray.is_initialized():
            ray.init(address=address or "auto", namespace=NAMESPACE, log_to_driver=False, logging_level="WARNING")


class RaySpawner(Spawner):
    """``spec`` run by the detached actor ``name``; see the module docstring.

    spawner = RaySpawner(spec, name="oar-serve-dep1-r0", resources={"oar-serve": 1})
    spawner.start()      # the actor is placed, its node starts the process
    spawner.node_id, spawner.host
    """

    kind = "ray"

    def __init__(
        self,
        spec: ProcessSpec,
        name: str,
        address: str | None = None,
        resources: dict[str, float] | None = None,
        node_id: str | None = None,
    ) -> None:
        self.spec, self.name, self.address = spec, name, address
        self.resources = dict(resources or {})
        self.pinned_node = node_id
        self.node_id: str | None = None
        self.host: str | None = None
        self.pid: int | None = None
        self._started_at: float | None = None
        self._exit_code: int | None = EXIT_UNKNOWN
        self._actor: Any = None
        self.log = RotatingLog(Path(spec.log_path), spec.log_max_bytes, spec.log_backups)

    # --- Spawner ----------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        connect(self.address)
        self._kill_actor()  # a leftover of an earlier start (its process ended): start afresh
        strategy: Any = "SPREAD"
        if self.pinned_node:
            strategy = NodeAffinitySchedulingStrategy(self.pinned_node, soft=False)
        actor = ProcessHost.options(
            name=self.name,
            namespace=NAMESPACE,
            lifetime="detached",
            resources=self.resources,
            scheduling_strategy=strategy,
        ).remote()
        env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
        try:
            placed = ray.get(actor.start.remote(self.spec.model_dump(mode="json"), env), timeout=120)
        except Exception as exc:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
            raise OarError(f"cannot start {self.name} on the Ray cluster: {type(exc).__name__}: {exc}") from None
        self._actor = actor
        self.node_id, self.host, self.pid = placed["node_id"], placed["node_ip"], placed["pid"]
        self._exit_code = None
        self._started_at = time.time()
        return self.state()

    def poll(self) -> int | None:
        self.log.enforce()
        if self._exit_code is not None:
            return self._exit_code
        actor = self._handle()
        if actor is None:
            self._exit_code = EXIT_UNKNOWN
            return self._exit_code
        try:
            self._exit_code = ray.get(actor.poll.remote(), timeout=_CALL_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            return None  # a busy node, not a dead one: ask again next time
        except ray.exceptions.RayError:
            self._exit_code = EXIT_UNKNOWN  # the actor died with its node
        if self._exit_code is not None:
            self._kill_actor()
        return self._exit_code

    def stop(self, timeout: float = 10.0) -> int | None:
        actor = self._handle()
        if actor is not None and self._exit_code is None:
            try:
                self._exit_code = ray.get(actor.stop.remote(timeout), timeout=timeout + _CALL_TIMEOUT_S)
            except ray.exceptions.RayError:
                self._exit_code = EXIT_UNKNOWN
        self._kill_actor()
        if self._exit_code is None:
            self._exit_code = EXIT_UNKNOWN
        return self._exit_code

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "spec": self.spec.model_dump(mode="json"),
            "name": self.name,
            "address": self.address,
            "resources": self.resources,
            "pinned_node": self.pinned_node,
            "node_id": self.node_id,
            "host": self.host,
            "pid": self.pid,
            "started_at": self._started_at,
            "exit_code": self._exit_code,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RaySpawner:
        try:
            spawner = cls(
                ProcessSpec.model_validate(state["spec"]),
                name=str(state["name"]),
                address=state.get("address"),
                resources=state.get("resources") or {},
                node_id=state.get("pinned_node"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"stored Ray process state is malformed: {exc}") from None
        spawner.node_id, spawner.host, spawner.pid = state.get("node_id"), state.get("host"), state.get("pid")
        spawner._started_at = state.get("started_at")
        if state.get("exit_code") is None and spawner.node_id:
            connect(spawner.address)
            spawner._exit_code = None
            spawner.poll()  # its actor is gone (node lost, cluster restarted): say so now
        return spawner

    def log_tail(self, lines: int = 50) -> str:
        return self.log.tail(lines)

    # --- helpers ----------------------------------------------------------------------------------
    def _handle(self) -> Any:
        if self._actor is None:
            try:
                self._actor = ray.get_actor(self.name, namespace=NAMESPACE)
            except ValueError:
                return None
        return self._actor

    def _kill_actor(self) -> None:
        actor = self._handle()
        if actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self._actor = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # its name is free only once the actor is dead
            try:
                ray.get_actor(self.name, namespace=NAMESPACE)
            except ValueError:
                return
            time.sleep(0.05)
