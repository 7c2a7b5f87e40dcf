"""Notebooks: each member's own JupyterLab on the studio's supervised JupyterHub (``oar.notebooks``).

The studio is the identity provider: it signs a one-time ticket for a signed-in member or admin and
sends the browser to the hub, which trusts it (no second sign-in). Viewers get no notebooks. Each
start gives the server a fresh studio token of its user (revoked at stop), so ``oar`` in a kernel has
that user's rights and no more.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from oar._core.errors import ConflictError, InvalidInputError, OarError, PayloadTooLargeError
from oar.notebooks import NotebookSettings
from oar.notebooks.accounts import end_account_processes, system_name
from oar.notebooks.hub import HubError, NotebookHub
from oar.notebooks.tickets import make_ticket
from oar.studio.config import StudioConfig
from oar.studio.security import derived_token
from oar.studio.services.access import Principal, require_creator
from oar.studio.services.accounts import AccountService, User

log = logging.getLogger("oar.studio.notebooks")
TOKEN_NAME = "notebook server"
TOKEN_TTL = timedelta(days=30)


@dataclass(frozen=True)
class NotebookServer:
    user: str
    status: str  # stopped | starting | running | stopping | failed
    message: str
    started_at: str | None = None
    last_activity: str | None = None


class NotebookService:
    def __init__(self, config: StudioConfig, accounts: AccountService, settings: NotebookSettings) -> None:
        self.accounts = accounts
        self.settings = settings
        self.hub = NotebookHub(
            Path(config.home) / "studio" / "notebooks",
            settings,
            studio_url=config.base_url,
            ticket_key=derived_token(config.secret_key(), "notebooks-ticket"),
        )
        self.public_url = settings.public_url
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()
        accounts.on_user_change(self._user_changed)

    # --- the server ------------------------------------------------------------------------------
    def status(self, who: Principal | None) -> NotebookServer:
        user = require_creator(who, "use notebooks")
        if self.hub.status() == "stopped":
            return self._answer(user.username, "stopped", "no notebook server yet: start one")
        return self._status(user.username)

    def start(self, who: Principal | None) -> NotebookServer:
        """Start the caller's server (the hub too, if needed); returns at once while it starts."""
        user = require_creator(who, "use notebooks")
        self.hub.ensure_running()
        current = self._status(user.username)
        if current.status in ("running", "starting"):
            return NotebookServer(user.username, current.status, f"your notebook server is already {current.status}")
        if current.status == "stopping":
            raise ConflictError("your notebook server is stopping; start it again in a few seconds")
        self.hub.api("POST", f"/users/{user.username}", ok=(201, 409))
        self._give_token(user)
        with self._lock:
            self._failures.pop(user.username, None)
        try:
            self.hub.api("POST", f"/users/{user.username}/server", ok=(201, 202))
        except HubError as exc:
            return self._failed(user.username, exc)
        return self._status(user.username)

    def stop(self, who: Principal | None) -> NotebookServer:
        user = require_creator(who, "use notebooks")
        if self.hub.status() == "stopped" or self._status(user.username).status == "stopped":
            return NotebookServer(user.username, "stopped", "your notebook server is not running")
        self.hub.api("DELETE", f"/users/{user.username}/server", ok=(202, 204, 400))
        self._revoke_tokens(user.id)
        return self._status(user.username)

    def wait_running(self, who: Principal | None, timeout: float | None = None) -> NotebookServer:
        """Block until the caller's server runs (or failed / stopped)."""
        user = require_creator(who, "use notebooks")
        deadline = time.monotonic() + (timeout or self.settings.start_timeout + 10)
        while True:
            current = self._status(user.username)
            if current.status not in ("starting",) or time.monotonic() > deadline:
                return current
            time.sleep(0.3)

    def open_url(self, who: Principal | None, path: str = "lab") -> str:
        """Where to send the caller's browser: the hub, with a one-time ticket, then ``/user/<name>/<path>``
        (or ``path`` itself when it is a hub path or one of the caller's own server paths)."""
        user = require_creator(who, "use notebooks")
        own = (f"/user/{user.username}/", "/hub/")
        target = path if path.startswith(own) else f"/user/{user.username}/{path.lstrip('/')}"
        query = urlencode({"ticket": make_ticket(self.hub.ticket_key, user.username), "next": target})
        return f"{self.browser_url}/hub/oar-login?{query}"

    @property
    def browser_url(self) -> str:
        return (self.public_url or self.hub.url).rstrip("/")

    # --- files in the user's workspace -----------------------------------------------------------
    def open_notebook(self, who: Principal | None, path: str, notebook: dict[str, Any], replace: bool = True) -> str:
        """Start the caller's server if needed, write ``notebook`` at ``path``; the URL that opens it."""
        user = require_creator(who, "use notebooks")
        if self.status(user).status != "running":
            self.start(user)
            server = self.wait_running(user)
            if server.status != "running":
                raise OarError(server.message)
        path = self.put_notebook(user, path, notebook, replace=replace)
        return self.open_url(user, f"lab/tree/{path}")

    def put_notebook(self, who: Principal | None, path: str, notebook: dict[str, Any], replace: bool = True) -> str:
        """Write a notebook into the caller's running server (through its contents API); returns its path."""
        user = require_creator(who, "use notebooks")
        path = _safe_path(path)
        base = f"/user/{user.username}/api/contents"
        folder = path.rpartition("/")[0]
        if folder:
            self.hub.request("PUT", f"{base}/{quote(folder)}", json={"type": "directory"}, ok=(200, 201))
        if not replace:
            existing = self.hub.request("GET", f"{base}/{quote(path)}?content=0", ok=(200, 404))
            if isinstance(existing, dict) and existing.get("type") == "notebook":
                return path  # the user's own copy: never overwritten
        body = {"type": "notebook", "format": "json", "content": notebook}
        try:
            self.hub.request("PUT", f"{base}/{quote(path)}", json=body, ok=(200, 201))
        except HubError as exc:
            if exc.status == 413:
                raise PayloadTooLargeError(str(exc)) from None
            raise
        return path

    # --- access taken away -------------------------------------------------------------------------
    def lock_out(self, username: str, user_id: int, timeout: float = 60.0) -> None:
        """Take notebooks away from a user now: their kernels' studio token is revoked, their server stopped,
        their hub user deleted (with every JupyterHub token and OAuth grant they hold, so their hub cookie
        names no one), and any process left running as their system account ended. Files stay."""
        self._revoke_tokens(user_id)
        (self.hub.state_dir / "tokens" / username).unlink(missing_ok=True)
        if self.hub.status() != "stopped":
            self.hub.wait_ready(timeout)  # a hub restarting just now is waited for, not skipped
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self.hub.api("DELETE", f"/users/{username}", ok=(204, 404))
                    break
                except HubError as exc:  # 400: the server is still stopping
                    if exc.status != 400 or time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
        if self.settings.spawner.endswith(".SystemUserSpawner"):
            ended = end_account_processes(system_name(username, self.settings.user_prefix))
            if ended:
                log.info("ended %d leftover process(es) of %s's notebook account", ended, username)

    def _user_changed(self, user: User) -> None:
        if user.disabled or not user.principal().can_create:
            self.lock_out(user.username, user.id)

    # --- lifecycle -------------------------------------------------------------------------------
    def resume(self) -> None:
        try:
            self.hub.resume()
        except OarError as exc:
            log.warning("the notebook hub was not resumed: %s", exc)

    def close(self) -> None:
        self.hub.close()

    # --- helpers ---------------------------------------------------------------------------------
    def _status(self, username: str) -> NotebookServer:
        try:
            user = self.hub.api("GET", f"/users/{username}")
        except HubError as exc:
            if exc.status == 404:
                return self._answer(username, "stopped", "no notebook server yet: start one")
            raise
        server = (user.get("servers") or {}).get("")
        if not server:
            return self._answer(username, "stopped", "your notebook server is stopped; your files are kept")
        if server.get("pending") == "stop":
            status, message = "stopping", "stopping your notebook server"
        elif server.get("ready"):
            status, message = "running", "your notebook server is running"
        else:
            status, message = "starting", "starting your notebook server (JupyterLab)"
        return NotebookServer(username, status, message, server.get("started"), server.get("last_activity"))

    def _answer(self, username: str, status: str, message: str) -> NotebookServer:
        with self._lock:
            failure = self._failures.get(username)
        if status == "stopped" and failure:
            return NotebookServer(username, "failed", failure)
        return NotebookServer(username, status, message)

    def _failed(self, username: str, exc: HubError) -> NotebookServer:
        reason = _hub_reason(self.hub.log_tail(200), username) or str(exc)
        message = f"your notebook server failed to start: {reason}"
        with self._lock:
            self._failures[username] = message
        log.warning("%s (user %s)", message, username)
        return NotebookServer(username, "failed", message)

    def _give_token(self, user: Principal) -> None:
        """A fresh studio token for the server's kernels, in a root-only file the hub's spawner reads."""
        self._revoke_tokens(user.id)
        token = self.accounts.issue_token(user.id, TOKEN_NAME, ttl=TOKEN_TTL)
        path = self.hub.state_dir / "tokens" / user.username
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token)

    def _revoke_tokens(self, user_id: int) -> None:
        for info in self.accounts.tokens(user_id):
            if info.name == TOKEN_NAME:
                self.accounts.revoke_token(info.id)


def _hub_reason(log_text: str, username: str) -> str | None:
    """The hub's own words for a failed start of ``username``'s server (the last such log line)."""
    lines = [line.strip() for line in log_text.splitlines() if username in line and "rror" in line]
    if not lines:
        return None
    line = lines[-1]
    return line.split("] ", 1)[-1][:400]


def _safe_path(path: str) -> str:
    """A relative path inside the user's home: no ``..``, no absolute path, ``.ipynb`` at the end."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or not parts[-1].endswith(".ipynb") or len(path) > 200:
        raise InvalidInputError(f"bad notebook path '{path}': a relative path ending in .ipynb")
    return "/".join(parts)
