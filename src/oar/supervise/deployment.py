"""``ServeDeployment``: one hub model version served by its own ``oar serve`` process (Model-as-a-Service).

A deployment owns a run directory (log, token digests, its own tokens), two
loopback ports (REST, gRPC) and a ``LocalProcessSpawner``. Inference needs
the deployment's bearer token: the server holds only its sha256
(``--auth-token-file``), the caller gets the token once from ``create`` and
stores its hash, like any API token. The deployment keeps two tokens of its
own in 0600 files: a probe token (inference, for the rollover check) and an
admin token (repository control, reaching the server through the
environment), never on a command line or in the stored state.

A rollover changes the version behind the same model id with no failed
request: the new version is loaded beside the old one, checked with a real
inference, and only then is the old one retired (it finishes its queue
first). The process keeps running, so clients keep their connections.

    deployment, token = ServeDeployment.create("chnsenti-cls", 3, run_dir="runs/dep-1", taken_ports=used)
    row.state = deployment.start()          # waits until ready; StartFailedError carries the log tail
    supervisor.watch("dep-1", deployment.spawner, ready=deployment.ready)
    row.state = deployment.rollover(4)      # same endpoint, same model id, zero failed requests
    deployment.figures(window=2.0)          # req/s, p50/p99 ms, errors
    deployment.undeploy()                   # stops the process, frees the ports
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from oar._core.errors import InvalidInputError, OarError
from oar.supervise.figures import LiveFigures, MetricsSnapshot
from oar.supervise.health import StartFailedError, is_ready, wait_ready
from oar.supervise.local import LocalProcessSpawner, ProcessSpec
from oar.supervise.ports import LOOPBACK, allocate_ports, release_ports
from oar.supervise.spawner import Spawner, spawner_from_state

KIND = "oar-serve"
SERVE_ENTRY = ("-m", "oar.cli.serve_main")  # `oar serve` alone: no torch import, so (re)starts are quick
LOG_NAME = "serve.log"
TOKEN_DIGEST_NAME = "token.sha256"
ADMIN_TOKEN_NAME = "admin-token"
PROBE_TOKEN_NAME = "probe-token"
# Inherited variables that would change what the served process does: set only on purpose.
_NOT_INHERITED = ("OAR_SERVE_TOKEN", "OAR_ADMIN_TOKEN", "PROMETHEUS_MULTIPROC_DIR")


class ServeDeployment:
    """A served model version: its process, ports and tokens. Build with ``create`` or ``from_state``."""

    def __init__(
        self,
        model: str,
        version: int,
        run_dir: Path,
        port: int,
        grpc_port: int,
        token_sha256: str,
        home: str | None = None,
        extra_args: tuple[str, ...] = (),
        spawner: Spawner | None = None,
        ray: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.version, self.run_dir = model, version, run_dir
        self.port, self.grpc_port = port, grpc_port
        self.token_sha256 = token_sha256
        self.home = home
        self.extra_args = extra_args
        self.ray = ray  # {"name", "address", "resources"}: a RaySpawner places it on the cluster
        self.spawner: Spawner = spawner or self._new_spawner()

    # --- building ---------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        model: str,
        version: int,
        run_dir: str | Path,
        taken_ports: list[int] | tuple[int, ...] | set[int] = (),
        home: str | Path | None = None,
        extra_args: tuple[str, ...] = (),
        ray: dict[str, Any] | None = None,
    ) -> tuple[ServeDeployment, str]:
        """A new (not yet started) deployment of ``model:version`` and its bearer token (shown once).

        ``version`` is a number: resolve ``name@alias`` in the hub first. ``taken_ports`` are the ports
        stored for the caller's other deployments. ``extra_args`` go to ``oar serve`` as they are
        (batching, threads); ``--workers`` is refused: a rollover must reach every process at once.
        ``ray`` (``name``, ``address``, ``resources``) runs it on a Ray cluster through a ``RaySpawner``.
        """
        _check_model(model, version)
        if any(arg.split("=")[0] in ("--workers", "--port", "--grpc-port", "--host") for arg in extra_args):
            raise InvalidInputError("extra_args may not set --host, --port, --grpc-port or --workers")
        folder = Path(run_dir).resolve()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        token, probe = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        digest = token_digest(token)
        _write_secret(folder / TOKEN_DIGEST_NAME, f"{digest}\n{token_digest(probe)}")
        _write_secret(folder / PROBE_TOKEN_NAME, probe)
        _write_secret(folder / ADMIN_TOKEN_NAME, secrets.token_urlsafe(32))
        port, grpc_port = allocate_ports(2, taken=taken_ports)
        home_text = str(Path(home).resolve()) if home else None
        served = cls(model, version, folder, port, grpc_port, digest, home_text, tuple(extra_args), ray=ray)
        return served, token

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ServeDeployment:
        """Re-adopt a stored deployment: its process if it still runs (``spawner.poll()`` says if not)."""
        if not isinstance(state, dict) or state.get("kind") != KIND:
            raise InvalidInputError(f"not a stored {KIND} deployment state")
        try:
            return cls(
                model=state["model"],
                version=int(state["version"]),
                run_dir=Path(state["run_dir"]),
                port=int(state["port"]),
                grpc_port=int(state["grpc_port"]),
                token_sha256=state["token_sha256"],
                home=state.get("home"),
                extra_args=tuple(state.get("extra_args", ())),
                spawner=spawner_from_state(state["spawner"]),
                ray=state.get("ray"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"stored {KIND} deployment state is malformed: {exc}") from None

    def state(self) -> dict[str, Any]:
        """JSON-serialisable; store it after every change (start, rollover, supervisor report)."""
        return {
            "kind": KIND,
            "model": self.model,
            "version": self.version,
            "run_dir": str(self.run_dir),
            "port": self.port,
            "grpc_port": self.grpc_port,
            "token_sha256": self.token_sha256,
            "home": self.home,
            "extra_args": list(self.extra_args),
            "ray": self.ray,
            "spawner": self.spawner.state(),
        }

    # --- where it answers -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """Where it listens: loopback, or the address of the Ray node that runs it."""
        return getattr(self.spawner, "host", None) or LOOPBACK

    @property
    def node(self) -> str | None:
        """The Ray node that runs it (None: this machine)."""
        return getattr(self.spawner, "node_id", None)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"grpc://{self.host}:{self.grpc_port}"

    @property
    def ports(self) -> tuple[int, int]:
        return self.port, self.grpc_port

    # --- life -------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        """Start the server and wait until it is ready; on failure it is stopped and the error has its log tail."""
        self.spawner.start()
        try:
            wait_ready(self.spawner, self.endpoint, timeout)
        except StartFailedError:
            self.spawner.stop(5.0)
            raise
        return self.state()

    def ready(self) -> bool:
        """The readiness check a ``Supervisor`` uses after a restart."""
        return is_ready(self.endpoint)

    def undeploy(self, timeout: float = 10.0) -> int | None:
        """Stop the server (graceful: in-flight requests finish), free its ports, drop its secrets.

        ``Supervisor.unwatch`` it first, or the supervisor restarts what this stops."""
        code = self.spawner.stop(timeout)
        release_ports(self.ports)
        for name in (ADMIN_TOKEN_NAME, PROBE_TOKEN_NAME, TOKEN_DIGEST_NAME):
            (self.run_dir / name).unlink(missing_ok=True)
        return code

    def log_tail(self, lines: int = 50) -> str:
        return self.spawner.log_tail(lines)

    def set_token_digest(self, digest: str) -> None:
        """Accept the bearer token whose SHA-256 is ``digest`` instead of its own (replicas share one);
        the probe token stays. Read by the server at its next start."""
        probe = self._secret(PROBE_TOKEN_NAME)
        _write_secret(self.run_dir / TOKEN_DIGEST_NAME, f"{digest}\n{token_digest(probe)}")
        self.token_sha256 = digest

    def figures(self, window: float = 1.0) -> LiveFigures:
        """req/s, p50/p99 latency and errors over the next ``window`` seconds (two ``/metrics`` scrapes)."""
        before = MetricsSnapshot.scrape(self.endpoint, self.model)
        time.sleep(window)
        return LiveFigures.between(before, MetricsSnapshot.scrape(self.endpoint, self.model))

    # --- rollover ---------------------------------------------------------------------------------
    def rollover(self, version: int, timeout: float = 120.0) -> dict[str, Any]:
        """Serve ``version`` instead of the current one under the same model id, failing no request.

        1. load ``version`` beside the current one (policy ``specific:OLD,NEW``);
        2. check it answers a real inference (built from its metadata);
        3. retire the old one (policy ``specific:NEW``): it finishes its queue first.
        If 1 or 2 fails the old version keeps serving alone and the error says why.
        """
        _check_model(self.model, version)
        if version == self.version:
            return self.state()
        if self.spawner.poll() is not None:
            raise OarError(f"deployment of {self.model} is not running; start it before a rollover")
        old = self.version
        try:
            with httpx.Client(base_url=self.endpoint, timeout=timeout) as http:
                self._load(http, f"specific:{old},{version}")
                try:
                    _probe(http, self.model, version, self._secret(PROBE_TOKEN_NAME))
                except OarError:
                    self._load(http, f"specific:{old}")
                    raise
                self._load(http, f"specific:{version}")
        except httpx.HTTPError as exc:
            raise OarError(f"rollover of {self.model} to version {version} failed: {exc!r}") from None
        self.version = version
        self.spawner.spec = self._spec()  # type: ignore[attr-defined]  # a restart after a crash serves the new version
        return self.state()

    def _load(self, http: httpx.Client, policy: str) -> None:
        admin = self._secret(ADMIN_TOKEN_NAME)
        response = http.post(
            f"/v2/repository/models/{self.model}/load",
            json={"parameters": {"version_policy": policy}},
            headers={"authorization": f"Bearer {admin}"},
        )
        if response.status_code != 200:
            raise OarError(f"loading {self.model} ({policy}) failed: {_error_text(response)}")

    def _secret(self, name: str) -> str:
        try:
            return (self.run_dir / name).read_text().strip()
        except OSError as exc:
            raise OarError(f"deployment secret {self.run_dir / name} is unreadable: {exc.strerror or exc}") from None

    # --- the process ------------------------------------------------------------------------------
    def _new_spawner(self) -> Spawner:
        if self.ray is None:
            return LocalProcessSpawner(self._spec())
        from oar.supervise.ray_spawner import RaySpawner  # ray is imported only where a cluster is used

        return RaySpawner(
            self._spec(), name=self.ray["name"], address=self.ray.get("address"), resources=self.ray.get("resources")
        )

    def _spec(self) -> ProcessSpec:
        argv = (
            sys.executable,
            *SERVE_ENTRY,
            f"{self.model}:{self.version}",
            "--host",
            "{node_ip}" if self.ray else LOOPBACK,
            "--port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
            "--auth-token-file",
            str(self.run_dir / TOKEN_DIGEST_NAME),
            *self.extra_args,
        )
        env = {"OAR_HOME": self.home} if self.home else {}
        return ProcessSpec(
            argv=argv,
            log_path=str(self.run_dir / LOG_NAME),
            env=env,
            env_files={"OAR_ADMIN_TOKEN": str(self.run_dir / ADMIN_TOKEN_NAME)},
            env_remove=_NOT_INHERITED,
            cwd=str(self.run_dir),
        )


def _probe(http: httpx.Client, model: str, version: int, token: str) -> None:
    """One real inference on ``model`` version ``version``, with inputs built from its metadata."""
    auth = {"authorization": f"Bearer {token}"}
    base = f"/v2/models/{model}/versions/{version}"
    metadata = http.get(base, headers=auth)
    if metadata.status_code != 200:
        raise OarError(f"version {version} of {model} has no metadata: {_error_text(metadata)}")
    inputs = [_sample_input(spec) for spec in metadata.json()["inputs"]]
    answer = http.post(f"{base}/infer", json={"inputs": inputs}, headers=auth)
    if answer.status_code != 200 or not answer.json().get("outputs"):
        raise OarError(f"version {version} of {model} does not answer: {_error_text(answer)}")


def _sample_input(spec: dict[str, Any]) -> dict[str, Any]:
    """A one-item tensor that fits ``spec`` (name, datatype, shape with -1 for free dimensions)."""
    shape = [1 if d in (-1, None) else int(d) for d in spec["shape"]] or [1]
    count = 1
    for d in shape:
        count *= d
    datatype = spec["datatype"]
    value: Any = "ok" if datatype == "BYTES" else (False if datatype == "BOOL" else 0)
    return {"name": spec["name"], "datatype": datatype, "shape": shape, "data": [value] * count}


def _check_model(model: str, version: int) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidInputError(f"version must be a positive integer (resolve aliases first), not {version!r}")
    if not model or ":" in model or "@" in model or "/" in model:
        raise InvalidInputError(f"bad model name {model!r}: give the name and the version separately")


def token_digest(token: str) -> str:
    """What a server is given instead of a bearer token: its SHA-256, hex (the token is never written)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text + "\n")


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
