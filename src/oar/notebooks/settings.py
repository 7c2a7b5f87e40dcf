"""Every notebook setting in one typed object; the studio writes it as JSON for the hub process to read."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oar._core.errors import InvalidInputError

#: where the hub process finds its settings (a JSON file the studio writes, mode 0600)
SETTINGS_ENV = "OAR_NOTEBOOKS_SETTINGS"


@dataclass(frozen=True)
class NotebookSettings:
    """How notebooks run. Defaults suit one machine; ``docs/notebooks.md`` explains each field.

    ``home_root`` holds one home per user (mode 0700, owned by that user's system account) and the
    shared kernel specs; it must be traversable by those accounts (not under a 0700 directory).
    """

    home_root: Path = field(default_factory=lambda: Path(os.environ.get("OAR_NOTEBOOK_HOMES", "/home/oar-notebooks")))
    user_prefix: str = "nb-"  # system account of studio user "alice": "nb-alice"
    idle_timeout: int = 3600  # seconds without activity before a server is stopped (a busy kernel is activity)
    cull_every: int = 300  # how often the idle culler looks
    max_notebook_mb: float = 20.0  # a save above this is refused with a message
    start_timeout: int = 120  # a server not answering this long after its start has failed
    session_hours: int = 12  # lifetime of the hub's own cookie; the studio's ticket is needed again after
    public_url: str | None = None  # where browsers reach the proxy (a TLS front); default http://127.0.0.1:<port>
    grant_traverse: bool = False  # add o+x to folders on the way to this Python / oar that lack it
    memory_mb: int = 8192  # per process (RLIMIT_AS) and, with cgroups, all of a user's processes; 0: none
    cpus: float = 2.0  # CPU cores at most per user (cgroups only); 0: none
    max_processes: int = 1024  # processes and threads per user account (RLIMIT_NPROC); 0: none
    cgroups: bool = True  # also cap each user's RAM and CPU in a cgroup where /sys/fs/cgroup is writable
    spawner: str = "oar.notebooks.spawner.SystemUserSpawner"  # or dockerspawner.DockerSpawner, kubespawner...

    def __post_init__(self) -> None:
        if self.idle_timeout < 20 or self.cull_every < 5:
            raise InvalidInputError("idle_timeout must be >= 20 s and cull_every >= 5 s")
        if not 0 < self.max_notebook_mb <= 1024:
            raise InvalidInputError("max_notebook_mb must be in (0, 1024]")
        if self.memory_mb and self.memory_mb < 512:
            raise InvalidInputError("memory_mb must be 0 (no limit) or >= 512: a JupyterLab server needs about 300 MB")
        if self.cpus < 0 or (self.max_processes and self.max_processes < 64):
            raise InvalidInputError("cpus must be >= 0 and max_processes 0 (no limit) or >= 64")

    @property
    def activity_every(self) -> int:
        """Seconds between activity reports (busy kernels -> server -> hub): a quarter of the idle timeout,
        at most JupyterHub's 300 s default, so a busy server is seen active well before it could be culled."""
        return max(5, min(300, self.idle_timeout // 4))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["home_root"] = str(self.home_root)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NotebookSettings:
        return cls(**{**data, "home_root": Path(data["home_root"])})
