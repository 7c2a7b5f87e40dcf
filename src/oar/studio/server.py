"""Run the studio: take the port, bootstrap the first admin (a one-time sign-in link), then serve with uvicorn.

The port is bound before anything is written: a start that cannot listen leaves no admin behind whose only
sign-in link went to a terminal nobody could use. An admin who lost a link gets a new one with
``oar studio admin reset-link NAME``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from oar._core.errors import ConflictError, OarError
from oar.studio.config import StudioConfig
from oar.studio.services import Services
from oar.supervise.procinfo import ProcessIdentity

RESET_HINT = "a lost sign-in link is replaced with: oar studio admin reset-link {name}"


@dataclass(frozen=True)
class AdminCreated:
    username: str
    link: str | None  # None when a password was given


def create_admin(services: Services, username: str = "admin", password: str | None = None) -> AdminCreated:
    """An admin account; without a password it gets a one-time sign-in link (24 h) instead."""
    user = services.accounts.create_user(username, "admin", password)
    if password:
        return AdminCreated(user.username, None)
    token = services.accounts.sign_in_link_token(user.id)
    return AdminCreated(user.username, f"{services.config.base_url}/signin/link/{token}")


def reset_link(services: Services, username: str) -> str:
    """A new one-time sign-in link for an existing user (older unused links stop working)."""
    user = services.accounts.by_name(username)
    if user.disabled:
        raise ConflictError(f"user '{username}' is disabled; enable the account first")
    return f"{services.config.base_url}/signin/link/{services.accounts.reset_sign_in_link(user.id)}"


def bootstrap(services: Services) -> AdminCreated | None:
    """On the first start (no users at all) make the admin and return its sign-in link."""
    if services.accounts.count_users():
        return None
    return create_admin(services)


def run(config: StudioConfig, announce=print) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from oar.studio.app import create_app

    listener = listen(config.host, config.port)
    try:
        app = create_app(config)
        first = bootstrap(app.state.services)
    except BaseException:
        listener.close()
        raise
    if first is not None:
        announce(f"first start: sign in as '{first.username}' with this one-time link (valid 24 h):\n  {first.link}")
    announce(f"oar studio on {config.base_url}  (database: {_redacted(config.url)})")
    server = uvicorn.Server(
        uvicorn.Config(app, host=config.host, port=config.port, log_level="warning", timeout_graceful_shutdown=10)
    )
    pid_file = _pid_file(config)
    _write_pid(pid_file)
    try:
        server.run(sockets=[listener])
    finally:
        if _running_studio(pid_file) == os.getpid():
            pid_file.unlink(missing_ok=True)


def stop(config: StudioConfig, everything: bool = False, announce=print) -> None:  # type: ignore[no-untyped-def]
    """Stop the studio started from ``config.home`` (its deployments keep serving, by design: the next start
    adopts them); with ``everything``, stop every deployment's server as well and mark it stopped."""
    pid_file = _pid_file(config)
    pid = _running_studio(pid_file)
    if pid is None:
        announce("no studio is running from this home")
    else:
        os.kill(pid, signal.SIGTERM)  # uvicorn shuts down gracefully; the deployments are left running
        deadline = time.monotonic() + 30
        while _running_studio(pid_file) == pid and ProcessIdentity.of(pid) is not None:
            if time.monotonic() > deadline:
                raise OarError(f"the studio (pid {pid}) did not stop within 30 s")
            time.sleep(0.1)
        pid_file.unlink(missing_ok=True)
        announce(f"studio (pid {pid}) stopped")
    services = Services.build(config)
    try:
        if everything:
            stopped = services.deployments.stop_all()
            announce(f"{len(stopped)} deployment(s) stopped" + (f": {', '.join(stopped)}" if stopped else ""))
        else:
            live = services.deployments.live_count()
            if live:
                announce(f"{live} deployment(s) keep serving; 'oar studio stop --all' stops them too")
    finally:
        services.close()


def _pid_file(config: StudioConfig) -> Path:
    return Path(config.home) / "studio" / "studio.pid"


def _write_pid(path: Path) -> None:
    """The running studio's identity (pid + kernel start time): ``oar studio stop`` never signals a recycled pid."""
    identity = ProcessIdentity.of(os.getpid())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(identity.__dict__ if identity else {"pid": os.getpid()}))


def _running_studio(path: Path) -> int | None:
    """The pid of the studio recorded in ``path`` if that very process still runs."""
    try:
        recorded = json.loads(path.read_text())
        identity = ProcessIdentity(**recorded)
    except (OSError, ValueError, TypeError):
        return None
    return identity.pid if identity.alive() else None


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a one-line error that says what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listener = socket.socket(family, kind, proto)
    except OSError as exc:
        raise OarError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        why = "the address is already in use (another studio?)" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise OarError(
            f"cannot listen on {host}:{port}: {why}; stop what holds it or pick another --port. "
            + RESET_HINT.format(name="admin")
        ) from None
    listener.setblocking(False)
    return listener


def _redacted(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
