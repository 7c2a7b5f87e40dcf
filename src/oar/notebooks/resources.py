"""Per-user memory, CPU and process limits for servers started by ``SystemUserSpawner`` on one machine.

systemd scopes need a running systemd (absent in most containers), so the limits use what the kernel
gives every process:

- ``RLIMIT_AS`` (address space, per process) and ``RLIMIT_NPROC`` (processes and threads of the user's
  account), set in the spawned server before it drops to the account; kernels inherit them. A kernel
  that allocates past the limit gets ``MemoryError`` and lives on; the other users' servers never notice.
- where the cgroup file system is writable (cgroup v2, or the v1 ``cpu`` and ``memory`` controllers),
  a group per account, ``oar-notebooks/<account>``, also caps the RAM of all the user's processes
  together (``memory.max`` / ``memory.limit_in_bytes``) and their CPU time (``cpu.max`` /
  ``cpu.cfs_quota_us``: ``cpus`` cores at most). Without it, CPU is not capped (the hub's log says so).
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP = "oar-notebooks"
_PERIOD_US = 100_000


@dataclass(frozen=True)
class ResourceLimits:
    memory_mb: int = 0  # 0: no limit
    cpus: float = 0.0  # 0: no limit
    max_processes: int = 0  # 0: no limit


def cgroup_dirs(account: str, root: Path = CGROUP_ROOT) -> dict[str, Path]:
    """The account's group in each usable hierarchy ({"v2": dir} or {"cpu": dir, "memory": dir}); empty
    when cgroups are read-only or missing here."""
    if (root / "cgroup.controllers").exists():
        controllers = (root / "cgroup.controllers").read_text().split()
        if {"cpu", "memory"} <= set(controllers) and os.access(root, os.W_OK):
            return {"v2": root / GROUP / account}
        return {}
    v1 = {name: root / name / GROUP / account for name in ("cpu", "memory")}
    if all(os.access(root / name, os.W_OK) for name in v1):
        return v1
    return {}


def prepare_cgroups(account: str, limits: ResourceLimits, root: Path = CGROUP_ROOT) -> list[Path]:
    """Make the account's groups with the limits written in; the ``cgroup.procs`` files to join. Any
    failure (a hierarchy that refuses delegation) leaves the rlimits alone to do the work."""
    if not (limits.memory_mb or limits.cpus):
        return []
    joins: list[Path] = []
    try:
        for kind, folder in cgroup_dirs(account, root).items():
            if kind == "v2":
                _enable_v2(root)
            folder.mkdir(parents=True, exist_ok=True)
            for name, value in _limit_files(kind, limits).items():
                (folder / name).write_text(value)
            joins.append(folder / "cgroup.procs")
    except OSError:
        return []
    return joins


def preexec(limits: ResourceLimits, joins: list[Path], then: Callable[[], None]) -> Callable[[], None]:
    """A ``preexec_fn``: join the groups and set the rlimits (still as root), then ``then`` (drop to the
    account). Runs in the forked child, before exec."""

    def apply() -> None:
        for procs in joins:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        if limits.memory_mb:
            size = limits.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if limits.max_processes:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
        then()

    return apply


def remove_cgroups(account: str, root: Path = CGROUP_ROOT) -> None:
    """Remove the account's groups once its server stopped (a group with processes left stays)."""
    for folder in cgroup_dirs(account, root).values():
        with contextlib.suppress(OSError):
            folder.rmdir()


def _limit_files(kind: str, limits: ResourceLimits) -> dict[str, str]:
    files: dict[str, str] = {}
    memory = str(limits.memory_mb * 1024 * 1024) if limits.memory_mb else None
    quota = str(int(limits.cpus * _PERIOD_US)) if limits.cpus else None
    if kind == "v2":
        files["memory.max"] = memory or "max"
        files["cpu.max"] = f"{quota or 'max'} {_PERIOD_US}"
    elif kind == "memory":
        files["memory.limit_in_bytes"] = memory or "-1"
    elif kind == "cpu":
        files["cpu.cfs_period_us"] = str(_PERIOD_US)
        files["cpu.cfs_quota_us"] = quota or "-1"
    return files


def _enable_v2(root: Path) -> None:
    """cgroup v2 hands controllers down level by level: enable cpu and memory for our group's children."""
    (root / GROUP).mkdir(exist_ok=True)
    for level in (root, root / GROUP):
        control = level / "cgroup.subtree_control"
        if not {"cpu", "memory"} <= set(control.read_text().split()):
            control.write_text("+cpu +memory")
