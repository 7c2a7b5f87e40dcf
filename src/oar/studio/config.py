"""How a studio runs: where its state lives, which database, where it listens."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import Parameters, profiles

from oar._core.settings import database_url, oar_home
from oar.notebooks.settings import NotebookSettings

DEFAULT_PORT = 8600


@dataclass(frozen=True)
class StudioConfig:
    """``home`` holds artifacts and (by default) the SQLite database; ``database_url`` may point at PostgreSQL.

    ``secure_cookies`` marks the session cookie Secure: on behind HTTPS, off for plain loopback HTTP.
    ``argon2`` is the cost of hashing passwords and tokens (RFC 9106's low-memory profile); only code can
    change it (a test suite passes ``argon2.profiles.CHEAPEST``), never an environment variable.
    """

    home: Path = field(default_factory=oar_home)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    secure_cookies: bool = False
    public_url: str | None = None
    signin_attempts: int = 5  # failed sign-ins allowed per user and address in signin_window seconds
    signin_window: float = 60.0
    deployments_enabled: bool = True
    argon2: Parameters = field(default_factory=lambda: profiles.RFC_9106_LOW_MEMORY)
    notebooks: NotebookSettings = field(default_factory=NotebookSettings)
    ray_address: str | None = None  # replicas of deployments go to this Ray cluster (else: this machine)
    ray_resources: dict[str, float] = field(default_factory=lambda: {"oar-serve": 1.0})  # one replica asks this

    @property
    def url(self) -> str:
        return self.database_url or (database_url() if self.home == oar_home() else f"sqlite:///{self.home / 'hub.db'}")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def secret_key(self) -> bytes:
        """The key that signs session cookies and derives deployment tokens: ``OAR_STUDIO_SECRET`` or a file
        made once (mode 0600) under ``home/studio``."""
        from_env = os.environ.get("OAR_STUDIO_SECRET")
        if from_env:
            return from_env.encode()
        path = self.home / "studio" / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()
