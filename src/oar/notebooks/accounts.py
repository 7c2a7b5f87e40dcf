"""A system account per studio user, made on first start: the isolation between users' notebooks.

Studio user ``alice`` runs as ``nb-alice`` with home ``<home_root>/nb-alice`` (mode 0700), so another
user's kernel cannot read her files. An account that exists but was not made here is never taken
over (a studio user named ``root`` gets ``nb-root``, never ``root``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import signal
import subprocess
import time
from pathlib import Path

from oar._core.errors import ForbiddenError, OarError

_PLAIN = re.compile(r"[a-z][a-z0-9_-]{0,27}")
COMMENT = "oar notebooks"


def system_name(username: str, prefix: str = "nb-") -> str:
    """A valid, unique Linux account name (<= 32 characters) for a studio user."""
    if _PLAIN.fullmatch(username) and len(prefix) + len(username) <= 32:
        return prefix + username
    cleaned = re.sub(r"[^a-z0-9_-]", "_", username)[:18]
    return f"{prefix}{cleaned}-{hashlib.sha256(username.encode()).hexdigest()[:8]}"


def ensure_account(username: str, home_root: Path, prefix: str = "nb-") -> pwd.struct_passwd:
    """The user's account, made (with a 0700 home) if missing."""
    name = system_name(username, prefix)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = None
    if entry is not None:
        if not entry.pw_gecos.startswith(COMMENT):
            raise ForbiddenError(f"system account '{name}' exists and was not made for notebooks; refusing to use it")
        os.chmod(entry.pw_dir, 0o700)
        return entry
    if os.geteuid() != 0:
        raise OarError("notebooks need root to create a system account per user (or another spawner, see docs)")
    home_root.mkdir(parents=True, exist_ok=True)
    os.chmod(home_root, 0o755)
    home = home_root / name
    command = ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", "--user-group"]
    result = subprocess.run(
        [*command, "--comment", f"{COMMENT} for {username}", name], capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        raise OarError(f"cannot create system account '{name}': {result.stderr.strip()}")
    os.chmod(home, 0o700)
    return pwd.getpwnam(name)


def closed_folders(paths: list[Path]) -> list[Path]:
    """Folders on the way to ``paths`` that other accounts cannot traverse (no o+x): the notebook
    accounts could not run this Python or import oar from there."""
    closed: list[Path] = []
    for path in paths:
        for folder in reversed(Path(os.path.realpath(path)).parents):
            if not os.stat(folder).st_mode & 0o001 and folder not in closed:
                closed.append(folder)
    return closed


def open_for_accounts(paths: list[Path], grant: bool) -> None:
    """Make sure the notebook accounts can reach ``paths``: with ``grant``, add traverse-only (o+x)
    to the folders that lack it; without, refuse with the list."""
    closed = closed_folders(paths)
    if not closed:
        return
    if not grant:
        names = ", ".join(str(f) for f in closed)
        raise OarError(
            f"the notebook accounts cannot reach this Python or oar: {names} lack o+x; install oar outside "
            "them, `chmod o+x` them, or set grant_traverse (traverse only, no listing)"
        )
    for folder in closed:
        os.chmod(folder, os.stat(folder).st_mode | 0o001)


def end_account_processes(name: str, grace: float = 3.0) -> int:
    """End every process running as notebook account ``name`` (SIGTERM, then SIGKILL after ``grace``):
    a user who lost notebooks keeps nothing running, not even a process their kernel detached.
    Only accounts made here are touched; returns how many processes were signalled."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return 0
    if not entry.pw_gecos.startswith(COMMENT):
        return 0
    pids = _pids_of(entry.pw_uid)
    signalled = len(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = [p for p in pids if p in _pids_of(entry.pw_uid)]
        if not pids:
            break
    return signalled


def _pids_of(uid: int) -> list[int]:
    """Live (not zombie) processes whose /proc entry belongs to ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid and (entry / "stat").read_text().split(") ")[-1][0] != "Z":
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return found
