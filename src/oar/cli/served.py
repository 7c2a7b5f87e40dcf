"""Which model versions running ``oar serve`` processes hold, so ``oar models delete`` can refuse them.

Each ``oar serve`` on the hub writes ``OAR_HOME/serving/<pid>.json`` (its model ids and address)
and removes it on exit; a file whose process is gone (killed with SIGKILL) is ignored and cleaned up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _folder(home: Path) -> Path:
    return home / "serving"


@contextmanager
def serving_record(home: Path, model_ids: list[str], address: str) -> Iterator[None]:
    """Record this process as serving ``model_ids`` for as long as the block runs."""
    folder = _folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.getpid()}.json"
    path.write_text(json.dumps({"pid": os.getpid(), "models": model_ids, "address": address}), encoding="utf-8")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def servers_holding(home: Path, model_id: str) -> list[dict]:
    """The live ``oar serve`` processes that serve ``model_id`` (``name:version``)."""
    holding = []
    folder = _folder(home)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _alive(pid):
            path.unlink(missing_ok=True)
            continue
        if model_id in record.get("models", []):
            holding.append(record)
    return holding


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
