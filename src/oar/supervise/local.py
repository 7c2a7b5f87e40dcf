"""``LocalProcessSpawner``: a subprocess on this machine, in its own process group, with a capped log file.

The child gets its own session (``setsid``), so stopping it signals the whole
group: a server's worker processes stop with it, and a Ctrl-C at the
supervisor's terminal does not reach it. Stopping is graceful first
(SIGTERM, time to drain), then forced (SIGKILL). Secrets reach the child
through ``env_files`` (read at each start), so they are neither on the
command line nor in the stored state.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from oar._core.errors import InvalidInputError, OarError
from oar._core.processes import die_with_parent
from oar.supervise.logs import RotatingLog
from oar.supervise.procinfo import ProcessIdentity, reap
from oar.supervise.spawner import EXIT_UNKNOWN, Spawner


class ProcessSpec(BaseModel):
    """What to run and where its output goes; stored inside the spawner's state, so no secrets here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: tuple[str, ...] = Field(..., min_length=1, description="the program and its arguments")
    log_path: str = Field(..., description="stdout and stderr of the child, appended")
    env: dict[str, str] = Field(default_factory=dict, description="variables set for the child")
    env_files: dict[str, str] = Field(
        default_factory=dict, description="variable -> file whose content becomes its value at each start (secrets)"
    )
    inherit_env: bool = Field(True, description="start from the supervisor's environment (else from env alone)")
    env_remove: tuple[str, ...] = Field((), description="inherited variables the child must not see")
    cwd: str | None = Field(None, description="working directory of the child")
    log_max_bytes: int = Field(10 << 20, ge=1024, description="log size that triggers a rotation")
    log_backups: int = Field(2, ge=0, le=20, description="rotated copies kept (<log>.1 is the newest)")


class LocalProcessSpawner(Spawner):
    """Runs ``spec.argv`` as a child process; see ``Spawner`` for the contract.

    spawner = LocalProcessSpawner(ProcessSpec(argv=[...], log_path="run/app.log"))
    state = spawner.start()
    spawner.poll()        # None while it runs
    spawner.stop(10.0)    # SIGTERM to the group, SIGKILL after 10 s
    """

    kind = "local"

    def __init__(self, spec: ProcessSpec, die_with_parent: bool = False) -> None:
        self.spec = spec
        self.die_with_parent = die_with_parent  # a host actor's child: no orphan when its node is lost
        self.log = RotatingLog(Path(spec.log_path), spec.log_max_bytes, spec.log_backups)
        self._popen: subprocess.Popen[bytes] | None = None
        self._identity: ProcessIdentity | None = None
        self._exit_code: int | None = EXIT_UNKNOWN  # nothing started yet: nothing runs
        self._started_at: float | None = None
        self._lock = threading.RLock()

    # --- Spawner ----------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        with self._lock:
            if self._exit_code is None and self.poll() is None:
                raise OarError(f"process {self.pid} is still running; stop it before starting it again")
            env = self._child_env()
            fd = self.log.open_for_child()
            try:
                os.write(fd, f"--- oar.supervise: starting {' '.join(self.spec.argv)}\n".encode())
                self._popen = subprocess.Popen(
                    self.spec.argv,
                    env=env,
                    cwd=self.spec.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=fd,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    preexec_fn=die_with_parent(os.getpid()) if self.die_with_parent else None,
                )
            except OSError as exc:
                raise OarError(f"cannot start {self.spec.argv[0]!r}: {exc.strerror or exc}") from None
            finally:
                os.close(fd)
            self._identity = ProcessIdentity.of(self._popen.pid, zombie_ok=True)
            self._exit_code = None
            self._started_at = time.time()
            return self.state()

    def poll(self) -> int | None:
        with self._lock:
            self.log.enforce()
            if self._exit_code is not None:
                return self._exit_code
            if self._popen is not None:
                self._exit_code = self._popen.poll()
            elif self._identity is None or not self._identity.alive():
                code = reap(self._identity.pid) if self._identity else None
                self._exit_code = EXIT_UNKNOWN if code is None else code
            return self._exit_code

    def stop(self, timeout: float = 10.0) -> int | None:
        with self._lock:
            if self.poll() is not None:
                return self._exit_code
            self._signal_group(signal.SIGTERM)
            if self._wait(timeout) is None:
                self._signal_group(signal.SIGKILL)
                self._wait(None)
            self._signal_group(signal.SIGKILL)  # workers the leader left behind
            return self._exit_code

    def state(self) -> dict[str, Any]:
        identity = self._identity
        return {
            "kind": self.kind,
            "spec": self.spec.model_dump(mode="json"),
            "pid": identity.pid if identity else None,
            "start_ticks": identity.start_ticks if identity else None,
            "boot_id": identity.boot_id if identity else None,
            "started_at": self._started_at,
            "exit_code": self._exit_code,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LocalProcessSpawner:
        try:
            spawner = cls(ProcessSpec.model_validate(state["spec"]))
            pid, ticks, boot = state.get("pid"), state.get("start_ticks"), state.get("boot_id")
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"stored local-process state is malformed: {exc}") from None
        spawner._started_at = state.get("started_at")
        if isinstance(pid, int) and isinstance(ticks, int) and state.get("exit_code") is None:
            spawner._identity = ProcessIdentity(pid, ticks, str(boot or ""))
            spawner._exit_code = None
            spawner.poll()  # gone, or a recycled pid: report it now, before anyone signals it
        return spawner

    def log_tail(self, lines: int = 50) -> str:
        return self.log.tail(lines)

    # --- helpers ----------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._identity.pid if self._identity else (self._popen.pid if self._popen else None)

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in self.spec.env_remove} if self.spec.inherit_env else {}
        env.update(self.spec.env)
        for name, path in self.spec.env_files.items():
            try:
                env[name] = Path(path).read_text().strip()
            except OSError as exc:
                raise OarError(f"cannot read {path} for ${name}: {exc.strerror or exc}") from None
        return env

    def _signal_group(self, signum: int) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)  # start_new_session: the group id is the leader's pid

    def _wait(self, timeout: float | None) -> int | None:
        """Wait for the leader to exit (at most ``timeout`` seconds); its exit code or None."""
        if self._popen is not None:
            try:
                self._exit_code = self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            return self._exit_code
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return self._exit_code
