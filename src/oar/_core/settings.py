"""Where oar keeps its state. Read from the environment each time so tests can redirect it."""

from __future__ import annotations

import os
from pathlib import Path


def oar_home() -> Path:
    """Root of local state: the SQLite hub and the content-addressed artifacts (``OAR_HOME``, default ``~/.oar``)."""
    return Path(os.environ.get("OAR_HOME") or Path.home() / ".oar").expanduser()


def database_url() -> str:
    """SQLAlchemy URL of the hub (``OAR_DATABASE_URL``); SQLite inside ``OAR_HOME`` by default."""
    url = os.environ.get("OAR_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{oar_home() / 'hub.db'}"
