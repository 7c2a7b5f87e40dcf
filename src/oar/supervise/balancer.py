"""``HAProxyBalancer``: one endpoint (REST and gRPC) in front of a deployment's replicas.

HAProxy runs in master-worker mode (``-W -S master.sock``) under a ``LocalProcessSpawner``. A
change of replicas rewrites the configuration, checks it (``haproxy -c``) and asks the master to
``reload``: a new worker takes the listening sockets, the old one finishes the requests it holds,
so no connection is dropped. The worker's runtime API (``admin.sock``) drains a server that is
about to go and tells when it holds no more requests.

- REST (HTTP/1.1): ``leastconn`` over the replicas; a replica is in rotation while its
  ``/v2/health/ready`` answers 200 (checked every 500 ms, out after two misses). A request that
  meets a refused or reset connection, or a connection closed without an answer, is sent again to
  another replica (``retry-on conn-failure empty-response``, ``option redispatch``): inference is
  idempotent, so a replica killed mid-request costs the client nothing but time.
- gRPC (HTTP/2 over cleartext): a TCP frontend, one client connection pinned to one replica for its
  life (the same health check takes a sick one out of rotation for new connections).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oar._core.errors import OarError
from oar.supervise.local import LocalProcessSpawner, ProcessSpec
from oar.supervise.ports import LOOPBACK
from oar.supervise.spawner import spawner_from_state

log = logging.getLogger(__name__)
HAPROXY = "haproxy"
REST_BACKEND = "replicas"
GRPC_BACKEND = "replicas_grpc"
READY_PATH = "/v2/health/ready"


@dataclass(frozen=True)
class Server:
    """One replica as the balancer sees it."""

    name: str
    host: str
    port: int
    grpc_port: int


class HAProxyBalancer:
    """See the module docstring. ``start()``, then ``update(servers)`` on every change of replicas."""

    def __init__(
        self, run_dir: str | Path, port: int, grpc_port: int, host: str = LOOPBACK, spawner: Any = None
    ) -> None:
        self.run_dir = Path(run_dir)
        self.host, self.port, self.grpc_port = host, port, grpc_port
        self.servers: list[Server] = []
        self.spawner = spawner or LocalProcessSpawner(self._spec())

    # --- files ------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.run_dir / "haproxy.cfg"

    @property
    def socket_dir(self) -> Path:
        """A short folder for the two control sockets (a socket's path must fit in 107 bytes)."""
        digest = hashlib.sha256(str(self.run_dir.resolve()).encode()).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / f"oar-lb-{os.getuid()}-{digest}"
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
            raise OarError(f"{folder} belongs to someone else or is open to others: remove it")
        return folder

    @property
    def admin_socket(self) -> Path:
        return self.socket_dir / "admin.sock"

    @property
    def master_socket(self) -> Path:
        return self.socket_dir / "master.sock"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"grpc://{self.host}:{self.grpc_port}"

    def _spec(self) -> ProcessSpec:
        binary = shutil.which(HAPROXY) or f"/usr/sbin/{HAPROXY}"
        argv = (binary, "-W", "-S", f"{self.master_socket},mode,600", "-f", str(self.config_path))
        return ProcessSpec(argv=argv, log_path=str(self.run_dir / "haproxy.log"), inherit_env=False)

    def config(self, servers: list[Server]) -> str:
        """The whole configuration for ``servers`` (what ``update`` writes)."""
        rest = (
            "\n".join(f"    server {s.name} {s.host}:{s.port} check maxconn 256" for s in servers)
            or "    # no replica yet"
        )
        grpc = (
            "\n".join(f"    server {s.name} {s.host}:{s.grpc_port} check port {s.port}" for s in servers)
            or "    # no replica yet"
        )
        return _TEMPLATE.format(
            admin=self.admin_socket,
            bind=f"{self.host}:{self.port}",
            grpc_bind=f"{self.host}:{self.grpc_port}",
            rest_backend=REST_BACKEND,
            grpc_backend=GRPC_BACKEND,
            ready=READY_PATH,
            rest_servers=rest,
            grpc_servers=grpc,
        )

    # --- life -------------------------------------------------------------------------------------
    def start(self, servers: list[Server], timeout: float = 10.0) -> dict[str, Any]:
        """Write the configuration and start HAProxy; returns once its worker answers on the runtime API."""
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write(servers)
        self.spawner.start()
        self._wait_serving(servers, timeout)
        return self.state()

    def update(self, servers: list[Server], timeout: float = 10.0) -> None:
        """Serve ``servers`` from now on. The running worker is changed through its runtime API (``add
        server`` / ``del server``: no reload, so not even an idle client connection is closed); the file is
        rewritten for the next start. Should the API refuse, the master reloads the new file gracefully."""
        if servers == self.servers:
            return
        before = {s.name: s for s in self.servers}
        self._write(servers)
        if self.spawner.poll() is not None:
            return  # not running: the next start reads the new file
        try:
            self._apply(before, {s.name: s for s in servers})
        except OarError as exc:
            log.warning("runtime change refused (%s): reloading haproxy", exc)
            self.reload(timeout)
        self._wait_serving(servers, timeout)

    def reload(self, timeout: float = 10.0) -> None:
        """Re-read the file: a new worker takes the sockets, the old one finishes what it holds."""
        answer = self._command(self.master_socket, "reload")
        if "fail" in answer.lower():
            raise OarError(f"haproxy refused to reload: {answer.strip()}")
        self._wait_serving(self.servers, timeout)

    def _apply(self, before: dict[str, Server], after: dict[str, Server]) -> None:
        for name in before.keys() - after.keys():
            for backend in (REST_BACKEND, GRPC_BACKEND):
                self._expect(f"set server {backend}/{name} state maint", "")
                self._expect(f"del server {backend}/{name}", "Server deleted")
        for name, server in after.items():
            old = before.get(name)
            if old == server:
                continue
            if old is not None:  # same replica, new place (restarted on another node)
                self._expect(f"set server {REST_BACKEND}/{name} addr {server.host} port {server.port}", "")
                self._expect(f"set server {GRPC_BACKEND}/{name} addr {server.host} port {server.grpc_port}", "")
                continue
            checks = f"check inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2 port {server.port}"
            self._expect(f"add server {REST_BACKEND}/{name} {server.host}:{server.port} {checks} maxconn 256", "New")
            self._expect(f"add server {GRPC_BACKEND}/{name} {server.host}:{server.grpc_port} {checks}", "New")
            for backend in (REST_BACKEND, GRPC_BACKEND):
                self._expect(f"enable health {backend}/{name}", "")
                self._expect(f"enable server {backend}/{name}", "")

    def _expect(self, command: str, answer: str) -> None:
        reply = self.runtime(command).strip()
        if (answer and answer not in reply) or (not answer and reply and "changed" not in reply):
            raise OarError(f"{command!r}: {reply[:200]}")

    def drain(self, name: str) -> None:
        """Send ``name`` no new request (its open connections finish)."""
        for backend in (REST_BACKEND, GRPC_BACKEND):
            self.runtime(f"set server {backend}/{name} state drain")

    def in_flight(self, name: str) -> int:
        """Requests HAProxy has sent to ``name`` and not yet had answered, plus those queued for it."""
        for row in self.stats():
            if row.get("pxname") == REST_BACKEND and row.get("svname") == name:
                return int(row.get("scur") or 0) + int(row.get("qcur") or 0)
        return 0

    def states(self) -> dict[str, str]:
        """Server name -> HAProxy's status of it (UP, DOWN, DRAIN, MAINT, ...), REST backend."""
        return {
            row["svname"]: row.get("status", "")
            for row in self.stats()
            if row.get("pxname") == REST_BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND")
        }

    def stats(self) -> list[dict[str, str]]:
        text = self.runtime("show stat").lstrip("# ")
        return list(csv.DictReader(io.StringIO(text)))

    def runtime(self, command: str) -> str:
        """One command on the worker's runtime API."""
        return self._command(self.admin_socket, command)

    def stop(self, timeout: float = 10.0) -> int | None:
        return self.spawner.stop(timeout)

    def state(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "host": self.host,
            "port": self.port,
            "grpc_port": self.grpc_port,
            "servers": [s.__dict__ for s in self.servers],
            "spawner": self.spawner.state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HAProxyBalancer:
        balancer = cls(
            state["run_dir"],
            int(state["port"]),
            int(state["grpc_port"]),
            state.get("host", LOOPBACK),
            spawner=spawner_from_state(state["spawner"]),
        )
        balancer.servers = [Server(**s) for s in state.get("servers", [])]
        return balancer

    # --- helpers ----------------------------------------------------------------------------------
    def _write(self, servers: list[Server]) -> None:
        text = self.config(servers)
        temporary = self.config_path.with_suffix(".new")
        temporary.write_text(text)
        import subprocess

        check = subprocess.run(
            [self.spawner.spec.argv[0], "-c", "-f", str(temporary)], capture_output=True, text=True, timeout=30
        )
        if check.returncode != 0:
            raise OarError(f"haproxy configuration rejected: {(check.stdout + check.stderr).strip()[-1000:]}")
        os.replace(temporary, self.config_path)
        self.servers = list(servers)

    def _wait_serving(self, servers: list[Server], timeout: float) -> None:
        """Until the (new) worker answers and lists exactly ``servers``."""
        wanted = {s.name for s in servers}
        deadline = time.monotonic() + timeout
        while True:
            if self.spawner.poll() is not None:
                raise OarError(f"haproxy exited:\n{self.spawner.log_tail(20)}")
            with contextlib.suppress(OSError, OarError):
                if set(self.states()) == wanted:
                    return
            if time.monotonic() > deadline:
                raise OarError(f"haproxy does not serve {sorted(wanted)} after {timeout:g} s")
            time.sleep(0.05)

    @staticmethod
    def _command(path: Path, command: str, timeout: float = 5.0) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(path))
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise OarError(f"haproxy socket {path}: {exc.strerror or exc}") from None
        return b"".join(chunks).decode(errors="replace")


_TEMPLATE = """# Written by oar.supervise.balancer: changes are overwritten at the next change of replicas.
global
    stats socket {admin} mode 600 level admin
    maxconn 8192
    hard-stop-after 60s

defaults
    mode http
    option http-keep-alive
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 10s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2

frontend rest
    bind {bind}
    default_backend {rest_backend}

backend {rest_backend}
    balance leastconn
    http-reuse safe
    option httpchk GET {ready}
    http-check expect status 200
{rest_servers}

frontend grpc
    mode tcp
    bind {grpc_bind}
    default_backend {grpc_backend}

backend {grpc_backend}
    mode tcp
    balance leastconn
    option httpchk GET {ready}
    http-check expect status 200
{grpc_servers}
"""
