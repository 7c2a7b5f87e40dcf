"""``NotebookHub``: the one JupyterHub, started and kept running through ``oar.supervise``, and its API.

The hub is a ``LocalProcessSpawner`` watched by a ``Supervisor`` (restarted with back-off when it
dies); its spawner state lives in ``state.json`` beside the hub's database, so a restarted studio
re-adopts a hub that still runs. Users' servers run in their own sessions, outlive a hub restart
and are re-adopted by the new hub (``cleanup_servers = False``).

    hub = NotebookHub(state_dir, settings, studio_url="http://127.0.0.1:8600", ticket_key=key)
    hub.ensure_running()
    hub.api("POST", "/users/alice/server")
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sys
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx

from oar._core.errors import OarError
from oar.notebooks.accounts import open_for_accounts
from oar.notebooks.kernels import oar_source_path
from oar.notebooks.settings import SETTINGS_ENV, NotebookSettings
from oar.supervise import LocalProcessSpawner, ProcessSpec, RestartPolicy, Status, Supervisor, spawner_from_state
from oar.supervise.ports import allocate_ports, port_is_free

KEY = "jupyterhub"
log = logging.getLogger("oar.notebooks.hub")
PROXY_VERSION = "5.3.0"


class HubUnavailableError(OarError):
    """The notebook hub is not running (starting, restarting or failed)."""

    http_status = 503


def proxy_command() -> str:
    """configurable-http-proxy from ``<venv>/node`` (``make install``), else from PATH."""
    local = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    found = str(local) if local.exists() else shutil.which("configurable-http-proxy")
    if found is None:
        raise OarError(
            "configurable-http-proxy is not installed: `make install`, or "
            f"npm install --prefix {Path(sys.prefix) / 'node'} configurable-http-proxy@{PROXY_VERSION}"
        )
    return found


class NotebookHub:
    def __init__(self, state_dir: Path, settings: NotebookSettings, studio_url: str, ticket_key: str) -> None:
        self.state_dir = Path(state_dir)
        self.settings = settings
        self.studio_url = studio_url.rstrip("/")
        self.ticket_key = ticket_key
        self._lock = threading.RLock()
        self._supervisor = Supervisor(
            on_change=self._save_state, policy=RestartPolicy(initial_delay=0.5, max_delay=10.0, start_timeout=90)
        )
        self._http: httpx.Client | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def ensure_running(self, wait: float = 90.0) -> None:
        """Start (or re-adopt) the hub if nobody supervises it yet; wait until it answers."""
        with self._lock:
            if KEY not in self._supervisor.watched():
                self._adopt_or_start()
        self.wait_ready(wait)

    def resume(self) -> None:
        """At studio start: re-adopt a hub that was running (a stopped one stays stopped until needed)."""
        with self._lock:
            if self._state_file.exists() and KEY not in self._supervisor.watched():
                self._adopt_or_start()

    def status(self) -> str:
        if KEY not in self._supervisor.watched():
            return "stopped"
        return str(self._supervisor.record(KEY)["status"])

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            status = self.status()
            if status == Status.FAILED or time.monotonic() > deadline:
                tail = self._supervisor.log_tail(KEY, 15) if status != "stopped" else ""
                raise HubUnavailableError(f"the notebook hub did not start ({status}); its log ends:\n{tail}")
            time.sleep(0.25)

    def ready(self) -> bool:
        run = self._run_config()
        if run is None:
            return False
        try:
            return httpx.get(f"{self.url}/hub/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        """Stop supervising; the hub and the users' servers keep running (the next studio re-adopts them)."""
        self._supervisor.close()
        if self._http is not None:
            self._http.close()

    def shutdown(self) -> None:
        """Stop every user's server, then the hub and its proxy."""
        if KEY not in self._supervisor.watched():
            return
        if self.ready():
            for user in self.api("GET", "/users") or []:
                if user.get("servers"):
                    self.api("DELETE", f"/users/{user['name']}/server", ok=(202, 204, 400))
        self._supervisor.unwatch(KEY, stop=True)
        self._state_file.unlink(missing_ok=True)
        self._supervisor.close()

    def pid(self) -> int | None:
        record = self._supervisor.record(KEY) if KEY in self._supervisor.watched() else None
        return record["spawner"].get("pid") if record else None

    def log_tail(self, lines: int = 30) -> str:
        return self._supervisor.log_tail(KEY, lines) if KEY in self._supervisor.watched() else ""

    # --- the REST API ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The proxy: the one address users and the studio reach the hub and the servers at."""
        run = self._run_config()
        if run is None:
            raise HubUnavailableError("the notebook hub has not been started")
        return f"http://127.0.0.1:{run['proxy_port']}"

    def api(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 202, 204), **kwargs: Any) -> Any:
        """Call ``/hub/api<path>`` as the studio's service; a status outside ``ok`` raises."""
        return self.request(method, f"/hub/api{path}", ok=ok, **kwargs)

    def request(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 202, 204), **kwargs: Any) -> Any:
        if self._http is None:
            token = self._secret("service_token")
            self._http = httpx.Client(headers={"authorization": f"token {token}"}, timeout=30)
        try:
            response = self._http.request(method, f"{self.url}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise HubUnavailableError(f"the notebook hub does not answer: {exc}") from exc
        if response.status_code not in ok:
            raise HubError(response.status_code, _message(response))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    # --- helpers ---------------------------------------------------------------------------------
    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _run_config(self) -> dict[str, Any] | None:
        path = self.state_dir / "run.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _adopt_or_start(self) -> None:
        self._prepare()
        spawner = None
        if self._state_file.exists():
            try:
                spawner = spawner_from_state(json.loads(self._state_file.read_text()))
            except (OarError, ValueError):
                spawner = None
        if spawner is None or spawner.poll() is not None:
            self._write_run_config()
            spawner = LocalProcessSpawner(self._spec())
            spawner.start()
        self._supervisor.watch(KEY, spawner, ready=self.ready)
        self._supervisor.start()

    def _prepare(self) -> None:
        missing = [m for m in ("jupyterhub", "jupyterlab", "jupyterhub_idle_culler") if find_spec(m) is None]
        if missing:
            hint = "pip install 'oar-platform[notebooks]'"
            raise OarError(f"notebooks need their extra: {hint} ({missing[0]} is missing)")
        reach = [Path(sys.executable), Path(sys.prefix), Path(__file__).resolve().parents[1]]
        open_for_accounts(reach, self.settings.grant_traverse)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        (self.state_dir / "tokens").mkdir(mode=0o700, exist_ok=True)
        for name in ("service_token", "proxy_token"):
            if not (self.state_dir / name).exists():
                _write_secret(self.state_dir / name, secrets.token_hex(32))
        _write_secret(self.state_dir / "ticket_key", self.ticket_key)

    def _write_run_config(self) -> None:
        ports = self._free_ports(self._run_config() or {})
        run = {
            "settings": self.settings.to_json(),
            "state_dir": str(self.state_dir),
            "studio_url": self.studio_url,
            "proxy_port": ports[0],
            "hub_port": ports[1],
            "proxy_api_port": ports[2],
            "proxy_command": proxy_command(),
            "pythonpath": oar_source_path(),
        }
        _write_secret(self.state_dir / "run.json", json.dumps(run, indent=1))

    def _free_ports(self, previous: dict[str, Any]) -> list[int]:
        """The ports of the last run when they are still free (a stable address for bookmarks), else new
        ones: another program may have taken one while the hub was down. The proxy a killed hub left
        behind still holds its two ports; the new hub replaces that proxy, so those count as free."""
        keys = ("proxy_port", "hub_port", "proxy_api_port")
        ports = [previous.get(k) for k in keys]
        if not all(ports):
            return allocate_ports(3)
        ours = _alive(self.state_dir / "proxy.pid")
        taken = [
            key
            for key, port in zip(keys, ports, strict=True)
            if not port_is_free(port) and not (ours and key != "hub_port")
        ]
        if taken:
            log.warning("notebook hub: %s taken by another program; moving to new ports", ", ".join(taken))
            return allocate_ports(3, taken=ports)
        return ports

    def _spec(self) -> ProcessSpec:
        config = Path(__file__).with_name("jupyterhub_config.py")
        return ProcessSpec(
            argv=(sys.executable, "-m", "jupyterhub", "-f", str(config)),
            log_path=str(self.state_dir / "jupyterhub.log"),
            cwd=str(self.state_dir),
            env={SETTINGS_ENV: str(self.state_dir / "run.json"), **_pythonpath()},
            env_files={
                "OAR_HUB_SERVICE_TOKEN": str(self.state_dir / "service_token"),
                "CONFIGPROXY_AUTH_TOKEN": str(self.state_dir / "proxy_token"),
                "OAR_NOTEBOOKS_TICKET_KEY": str(self.state_dir / "ticket_key"),
            },
            env_remove=("OAR_STUDIO_TOKEN", "OAR_STUDIO_SECRET", "OAR_DATABASE_URL"),
        )

    def _save_state(self, key: str, record: dict[str, Any]) -> None:
        if record["status"] != "stopped":
            _write_secret(self._state_file, json.dumps(record["spawner"]))

    def _secret(self, name: str) -> str:
        return (self.state_dir / name).read_text().strip()


class HubError(OarError):
    """JupyterHub answered with an error; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _pythonpath() -> dict[str, str]:
    source = oar_source_path()
    if source is None:
        return {}
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != source]
    return {"PYTHONPATH": os.pathsep.join([source, *rest])}


def _alive(pid_file: Path) -> bool:
    """Whether the process named in ``pid_file`` still runs."""
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body)
    except ValueError:
        return f"HTTP {response.status_code}"
