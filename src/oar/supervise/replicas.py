"""``ReplicatedDeployment``: N ``oar serve`` replicas of one model version behind one HAProxy endpoint.

Each replica is a ``ServeDeployment`` (its own ports, its own process, local or on a Ray node
through a ``RaySpawner``); all accept the same bearer token. One ``Supervisor`` restarts crashed
replicas (a replica whose Ray node is lost starts again on another node) and HAProxy itself; the
balancer's configuration follows every change. Removing a replica drains it first: HAProxy sends it
no new request, it is stopped once the ones it holds are answered. A rollover goes replica by
replica, each in place (see ``ServeDeployment.rollover``), so nothing fails. Between ``low`` and
``high`` replicas an ``AutoscalePolicy`` decides the count from the load the replicas report.

``state()`` is everything a restarted caller needs to re-adopt it all (``from_state``).

    deployment, token = ReplicatedDeployment.create("m", 3, "runs/dep-1", ReplicaCount(1, 4))
    row.state = deployment.start()
    deployment.endpoint          # the balancer: http://127.0.0.1:PORT (gRPC: grpc_endpoint)
    deployment.scale_to(3); deployment.rollover(4); deployment.undeploy()
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from oar._core.errors import InvalidInputError, OarError
from oar.supervise.autoscale import AutoscalePolicy, Sample, load_between
from oar.supervise.balancer import HAProxyBalancer, Server
from oar.supervise.deployment import ServeDeployment, token_digest
from oar.supervise.figures import LiveFigures, MetricsSnapshot
from oar.supervise.ports import allocate_ports, release_ports
from oar.supervise.supervisor import RestartPolicy, Supervisor

log = logging.getLogger(__name__)
KIND = "oar-replicas"
MAX_REPLICAS = 32
BALANCER_KEY = "balancer"
OnChange = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class ReplicaCount:
    """``low`` to ``high`` replicas (equal: a fixed count, no autoscaling)."""

    low: int
    high: int

    @classmethod
    def parse(cls, value: Any) -> ReplicaCount:
        """``N``, ``[min, max]`` (or ``"N"``, ``"min-max"``); a clear error for anything else."""
        if isinstance(value, str):
            parts = value.replace(",", "-").split("-")
            try:
                value = [int(p) for p in parts] if len(parts) == 2 else int(value)
            except ValueError:
                raise InvalidInputError(f"replicas must be N or MIN-MAX, not {value!r}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise InvalidInputError(f"replicas must be N or [min, max], not {value!r}")
        low, high = value
        if not 1 <= low <= high <= MAX_REPLICAS:
            raise InvalidInputError(f"replicas need 1 <= min <= max <= {MAX_REPLICAS}, not [{low}, {high}]")
        return cls(low, high)

    @property
    def autoscaled(self) -> bool:
        return self.high > self.low

    def to_json(self) -> list[int]:
        return [self.low, self.high]


class ReplicatedDeployment:
    """See the module docstring. Build with ``create`` or ``from_state``."""

    def __init__(
        self,
        model: str,
        version: int,
        run_dir: Path,
        count: ReplicaCount,
        balancer: HAProxyBalancer,
        token_sha256: str,
        home: str | None = None,
        extra_args: tuple[str, ...] = (),
        ray: dict[str, Any] | None = None,
        policy: AutoscalePolicy | None = None,
        replicas: dict[str, ServeDeployment] | None = None,
        next_index: int = 0,
        restart: RestartPolicy | None = None,
    ) -> None:
        self.model, self.version, self.run_dir, self.count = model, version, run_dir, count
        self.balancer, self.token_sha256, self.home, self.extra_args = balancer, token_sha256, home, extra_args
        self.ray = ray  # {"address", "resources", "prefix"}: replicas go to that Ray cluster
        self.policy = policy or AutoscalePolicy()
        self.replicas: dict[str, ServeDeployment] = dict(replicas or {})
        self.next_index = next_index
        self.on_change: OnChange | None = None
        self.scale_events: list[tuple[float, int]] = []  # (time, count) of every scaling step
        self._lock = threading.RLock()
        self._changing = threading.RLock()  # one scaling step or rollover at a time
        self._supervisor = Supervisor(
            on_change=self._supervised, policy=restart or RestartPolicy(initial_delay=0.2, max_delay=10.0)
        )
        self._stop = threading.Event()
        self._autoscaler: threading.Thread | None = None

    # --- building ---------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        model: str,
        version: int,
        run_dir: str | Path,
        count: ReplicaCount,
        taken_ports: list[int] | tuple[int, ...] | set[int] = (),
        home: str | Path | None = None,
        extra_args: tuple[str, ...] = (),
        ray: dict[str, Any] | None = None,
        policy: AutoscalePolicy | None = None,
        restart: RestartPolicy | None = None,
    ) -> tuple[ReplicatedDeployment, str]:
        """A new (not started) replicated deployment and its bearer token (shown once)."""
        folder = Path(run_dir).resolve()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = secrets.token_urlsafe(32)
        port, grpc_port = allocate_ports(2, taken=taken_ports)
        balancer = HAProxyBalancer(folder / "balancer", port, grpc_port)
        home_text = str(Path(home).resolve()) if home else None
        digest = token_digest(token)
        deployment = cls(
            model, version, folder, count, balancer, digest, home_text, tuple(extra_args), ray, policy, restart=restart
        )
        deployment._taken = set(taken_ports) | {port, grpc_port}
        return deployment, token

    @classmethod
    def from_state(cls, state: dict[str, Any], restart: RestartPolicy | None = None) -> ReplicatedDeployment:
        """Re-adopt every replica and the balancer (``resume()`` then supervises them again)."""
        if not isinstance(state, dict) or state.get("kind") != KIND:
            raise InvalidInputError(f"not a stored {KIND} deployment state")
        try:
            policy = AutoscalePolicy(**state["policy"]) if state.get("policy") else None
            return cls(
                model=state["model"],
                version=int(state["version"]),
                run_dir=Path(state["run_dir"]),
                count=ReplicaCount.parse(state["replicas"]),
                balancer=HAProxyBalancer.from_state(state["balancer"]),
                token_sha256=state["token_sha256"],
                home=state.get("home"),
                extra_args=tuple(state.get("extra_args", ())),
                ray=state.get("ray"),
                policy=policy,
                replicas={k: ServeDeployment.from_state(v) for k, v in state["members"].items()},
                next_index=int(state.get("next_index", 0)),
                restart=restart,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"stored {KIND} deployment state is malformed: {exc}") from None

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "kind": KIND,
                "model": self.model,
                "version": self.version,
                "run_dir": str(self.run_dir),
                "replicas": self.count.to_json(),
                "port": self.balancer.port,
                "grpc_port": self.balancer.grpc_port,
                "token_sha256": self.token_sha256,
                "home": self.home,
                "extra_args": list(self.extra_args),
                "ray": self.ray,
                "policy": asdict(self.policy),
                "next_index": self.next_index,
                "balancer": self.balancer.state(),
                "members": {name: served.state() for name, served in self.replicas.items()},
            }

    # --- where it answers -------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return self.balancer.endpoint

    @property
    def grpc_endpoint(self) -> str:
        return self.balancer.grpc_endpoint

    @property
    def port(self) -> int:
        return self.balancer.port

    def ports(self) -> list[int]:
        """Every port it holds: the balancer's and each replica's."""
        with self._lock:
            return [self.balancer.port, self.balancer.grpc_port] + [p for s in self.replicas.values() for p in s.ports]

    # --- life -------------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> dict[str, Any]:
        """Start ``low`` replicas (in parallel, each ready), then the balancer; supervise and autoscale."""
        with ThreadPoolExecutor(max_workers=self.count.low) as pool:
            started = list(pool.map(lambda _: self._new_replica(timeout), range(self.count.low)))
        with self._lock:
            for name, served in started:
                self.replicas[name] = served
            self.balancer.start(self._servers())
        self.resume()
        return self.state()

    def resume(self) -> None:
        """Supervise the replicas and the balancer (gone ones restart at once); start autoscaling."""
        with self._lock:
            for name, served in self.replicas.items():
                if name not in self._supervisor.watched():
                    self._supervisor.watch(name, served.spawner, ready=served.ready)
            if BALANCER_KEY not in self._supervisor.watched():
                self._supervisor.watch(BALANCER_KEY, self.balancer.spawner, ready=self._balancer_up)
        self._supervisor.start()
        if self.count.autoscaled and self._autoscaler is None:
            self._stop.clear()
            self._autoscaler = threading.Thread(target=self._autoscale, name="oar-autoscale", daemon=True)
            self._autoscaler.start()

    def ready(self) -> bool:
        """The balancer runs and at least one replica is in rotation."""
        with contextlib.suppress(OarError, OSError):
            return "UP" in self.balancer.states().values()
        return False

    def close(self) -> None:
        """Stop supervising and autoscaling; every process keeps running (``from_state`` re-adopts them)."""
        self._stop.set()
        if self._autoscaler is not None:
            self._autoscaler.join()
            self._autoscaler = None
        self._supervisor.close()

    def undeploy(self, timeout: float = 10.0) -> None:
        """Stop the balancer and every replica (in-flight requests finish), free every port."""
        self.close()
        with self._lock:
            for name in self._supervisor.watched():
                self._supervisor.unwatch(name, stop=False)
            self.balancer.stop(timeout)
            shutil.rmtree(self.balancer.socket_dir, ignore_errors=True)
            with ThreadPoolExecutor(max_workers=max(len(self.replicas), 1)) as pool:
                list(pool.map(lambda served: served.undeploy(timeout), self.replicas.values()))
            release_ports((self.balancer.port, self.balancer.grpc_port))
            self.replicas.clear()

    # --- scaling ----------------------------------------------------------------------------------
    def scale_to(self, count: int, timeout: float = 120.0, drain_timeout: float = 30.0) -> None:
        """Add replicas (each ready before it joins the balancer) or drain and remove the newest ones."""
        count = min(max(count, 1), MAX_REPLICAS)
        with self._changing:
            self._scale_to(count, timeout, drain_timeout)

    def _scale_to(self, count: int, timeout: float, drain_timeout: float) -> None:
        while len(self.replicas) < count:
            name, served = self._new_replica(timeout)
            with self._lock:
                self.replicas[name] = served
                self.balancer.update(self._servers())
                self._supervisor.watch(name, served.spawner, ready=served.ready)
            self._scaled()
        while len(self.replicas) > count:
            self.remove_replica(sorted(self.replicas, key=_index)[-1], drain_timeout)

    def remove_replica(self, name: str, drain_timeout: float = 30.0) -> None:
        """Drain ``name`` (no new request), wait for the ones it holds, stop it, drop it from the balancer."""
        with self._changing:
            with self._lock:
                served = self.replicas[name]
                self._supervisor.unwatch(name, stop=False)
            with contextlib.suppress(OarError):
                self.balancer.drain(name)
                deadline = time.monotonic() + drain_timeout
                while self.balancer.in_flight(name) > 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
            with self._lock:
                del self.replicas[name]
                self.balancer.update(self._servers())
            served.undeploy()
            self._scaled()

    def rollover(self, version: int, timeout: float = 120.0) -> dict[str, Any]:
        """Every replica to ``version``, one at a time, each answering the new version before the next."""
        with self._changing:
            self.version = version  # replicas added from now on start with it
            for name in sorted(self.replicas, key=_index):
                served = self.replicas.get(name)
                if served is not None:
                    served.rollover(version, timeout)
                    with contextlib.suppress(OarError):
                        self._supervisor.notify(name)
        return self.state()

    # --- figures ----------------------------------------------------------------------------------
    def figures(self, window: float = 1.0) -> list[dict[str, Any]]:
        """Per replica: name, node, endpoint, status, req/s, p50/p99 ms, CPU % over ``window`` seconds."""
        with self._lock:
            members = dict(self.replicas)
            statuses = {name: self._status(name) for name in members}
        before = {n: _scrape(s) for n, s in members.items()}
        cpu_before = {n: _cpu_seconds(s) for n, s in members.items()}
        time.sleep(window)
        rows = []
        for name, served in members.items():
            after, cpu_after = _scrape(served), _cpu_seconds(served)
            row: dict[str, Any] = {
                "name": name,
                "node": served.node or "local",
                "host": served.host,
                "endpoint": served.endpoint,
                "status": statuses[name],
                "version": served.version,
            }
            if before[name] is not None and after is not None:
                figures = LiveFigures.between(before[name], after)  # type: ignore[arg-type]
                row |= {"requests_per_second": figures.requests_per_s, "p50_ms": figures.p50_ms}
                row |= {"p99_ms": figures.p99_ms, "requests": figures.requests, "errors": figures.errors_total}
            if cpu_before[name] is not None and cpu_after is not None:
                row["cpu_percent"] = 100.0 * (cpu_after - cpu_before[name]) / window  # type: ignore[operator]
            rows.append(row)
        return sorted(rows, key=lambda r: _index(r["name"]))

    # --- internals --------------------------------------------------------------------------------
    def _new_replica(self, timeout: float) -> tuple[str, ServeDeployment]:
        with self._lock:
            name = f"r{self.next_index}"
            self.next_index += 1
            taken = set(getattr(self, "_taken", set())) | set(self.ports())
            ray = None
            if self.ray is not None:
                ray = {**self.ray, "name": f"{self.ray.get('prefix', 'oar-serve')}-{self.run_dir.name}-{name}"}
                ray.pop("prefix", None)
            served, _ = ServeDeployment.create(
                self.model, self.version, self.run_dir / name, taken, self.home, self.extra_args, ray=ray
            )
            self._taken = taken | set(served.ports)
            served.set_token_digest(self.token_sha256)
        served.start(timeout)
        return name, served

    def _servers(self) -> list[Server]:
        return [
            Server(name, served.host, served.port, served.grpc_port)
            for name, served in sorted(self.replicas.items(), key=lambda kv: _index(kv[0]))
        ]

    def _status(self, name: str) -> str:
        try:
            return str(self._supervisor.record(name)["status"])
        except OarError:
            return "removing"

    def _balancer_up(self) -> bool:
        with contextlib.suppress(OarError, OSError):
            self.balancer.runtime("show info")
            return True
        return False

    def _supervised(self, key: str, record: dict[str, Any]) -> None:
        """A replica (re)started, possibly on another node: the balancer follows; the caller stores it."""
        if key != BALANCER_KEY and record.get("status") == "running":
            with self._lock:
                servers = self._servers()
                if servers != self.balancer.servers:
                    try:
                        self.balancer.update(servers)
                    except OarError as exc:
                        log.warning("balancer update failed: %s", exc)
        self._changed()

    def _scaled(self) -> None:
        self.scale_events.append((time.monotonic(), len(self.replicas)))
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self.state())
            except Exception:  # the caller's store failing must not stop supervision
                log.exception("storing the replicated deployment failed")

    def _autoscale(self) -> None:
        policy = self.policy
        rounds: list[list[Sample]] = []
        last_up = last_change = time.monotonic()
        while not self._stop.wait(policy.interval_s):
            with self._lock:
                members = list(self.replicas.values())
            rounds = [*rounds, [s for s in (_sample(m) for m in members) if s is not None]]
            rounds = rounds[-max(int(policy.window_s / policy.interval_s), 1) :]
            now = time.monotonic()
            wanted = policy.desired(
                len(members), self.count.low, self.count.high, load_between(rounds), now - last_up, now - last_change
            )
            if wanted == len(members):
                continue
            try:
                self.scale_to(wanted)
            except OarError as exc:
                log.warning("autoscaling %s to %d failed: %s", self.model, wanted, exc)
                continue
            last_change = time.monotonic()
            last_up = last_change if wanted > len(members) else last_up
            rounds = []


def _index(name: str) -> int:
    return int(name.lstrip("r") or 0)


def _scrape(served: ServeDeployment) -> MetricsSnapshot | None:
    try:
        return MetricsSnapshot.scrape(served.endpoint, served.model, timeout=2.0)
    except OarError:
        return None


def _sample(served: ServeDeployment) -> Sample | None:
    try:
        response = httpx.get(served.endpoint + "/metrics", timeout=2.0)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    return Sample.parse(response.text)


def _cpu_seconds(served: ServeDeployment) -> float | None:
    """CPU time of the replica's process group so far (this machine only: a remote node says None)."""
    pid = getattr(served.spawner, "pid", None)
    if not isinstance(pid, int) or (served.node is not None and served.host not in _local_addresses()):
        return None
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid:  # process group id
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total or None


def _local_addresses() -> set[str]:
    import socket

    with contextlib.suppress(OSError):
        return {"127.0.0.1", *(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None))}
    return {"127.0.0.1"}
