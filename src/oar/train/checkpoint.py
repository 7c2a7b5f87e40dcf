"""Checkpoints a preempted machine cannot half-write.

A checkpoint is one directory ``step-000000120/`` holding weights (safetensors),
the training state (optimizer, scheduler, scaler, RNG, data position: plain tensors
and values, read back with ``torch.load(weights_only=True)``), a JSON ``meta.json``
and, written last, ``manifest.json`` with the size and SHA-256 of every file.
Everything is written under a temporary name, fsynced, then renamed into place,
so a reader sees a complete checkpoint or none; a directory whose files do not
match its manifest (a truncated copy, a bad disk) is skipped with a warning.

>>> store = Checkpoints("runs/abc/checkpoints", keep_last=3)
>>> store.write(120, {"model": model.state_dict()}, {"optimizer": opt.state_dict()}, {"epoch": 1})
>>> store.latest().step
120
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from oar._core.errors import InvalidInputError

log = logging.getLogger("oar.train")

FORMAT = 1
MANIFEST = "manifest.json"
_NAME = re.compile(r"^step-(\d{9})$")


class CheckpointError(Exception):
    """A checkpoint directory is incomplete or does not match its manifest."""


class CheckpointMismatchError(InvalidInputError):
    """The newest checkpoint was written by a run with other settings, data or model."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint on disk whose files matched their manifest when it was opened."""

    path: Path
    step: int
    meta: dict[str, Any]
    files: dict[str, bytes]

    def weights(self, name: str = "model") -> dict[str, torch.Tensor]:
        return load_safetensors(self.files[f"{name}.safetensors"])

    def has_weights(self, name: str) -> bool:
        return f"{name}.safetensors" in self.files

    def state(self) -> dict[str, Any]:
        return torch.load(io.BytesIO(self.files["state.pt"]), weights_only=True)


class Checkpoints:
    """The checkpoint directory of one run: atomic writes, keep-last-k, newest valid on read."""

    def __init__(self, directory: str | Path, keep_last: int | None = 3) -> None:
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"keep_last must be at least 1 (or None to keep all), got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last

    def write(
        self,
        step: int,
        weights: dict[str, dict[str, torch.Tensor]],
        state: dict[str, Any],
        meta: dict[str, Any],
    ) -> Path:
        """Write ``step-<step>/`` atomically and prune to the newest ``keep_last``; return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        staging = self.directory / f".tmp-step-{step:09d}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        blobs = {f"{name}.safetensors": _safetensors_bytes(tensors) for name, tensors in weights.items()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        blobs["state.pt"] = buffer.getvalue()
        blobs["meta.json"] = json.dumps({**meta, "step": step}, default=float).encode()
        manifest = {"format": FORMAT, "step": step, "files": {}}
        for name, data in blobs.items():
            manifest["files"][name] = {"bytes": len(data), "sha256": _write_synced(staging / name, data)}
        _write_synced(staging / MANIFEST, json.dumps(manifest, indent=1).encode())
        _fsync_dir(staging)
        target = self.directory / f"step-{step:09d}"
        if target.exists():  # an older, invalid checkpoint of the same step: replace it
            shutil.rmtree(target)
        os.replace(staging, target)
        _fsync_dir(self.directory)
        self._prune()
        return target

    def steps(self) -> list[int]:
        """Steps of the complete-looking checkpoint directories, oldest first (not yet verified)."""
        if not self.directory.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.directory.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self, quarantine: bool = True) -> Checkpoint | None:
        """The newest checkpoint that verifies; invalid newer ones are warned about and set aside."""
        for step in reversed(self.steps()):
            path = self.directory / f"step-{step:09d}"
            try:
                return open_checkpoint(path)
            except CheckpointError as exc:
                log.warning("skipping checkpoint %s: %s", path.name, exc)
                if quarantine:
                    os.replace(path, path.with_name(f"{path.name}.invalid"))
        return None

    def _prune(self) -> None:
        if self.keep_last is None:
            return
        for step in self.steps()[: -self.keep_last]:
            shutil.rmtree(self.directory / f"step-{step:09d}", ignore_errors=True)

    def _remove_stale_temporaries(self) -> None:
        """Half-written directories left by a killed writer; they were never renamed into place."""
        for path in self.directory.glob(".tmp-step-*"):
            shutil.rmtree(path, ignore_errors=True)


def open_checkpoint(path: Path) -> Checkpoint:
    """Read and verify every file against the manifest; raise ``CheckpointError`` on any mismatch."""
    try:
        manifest = json.loads((path / MANIFEST).read_bytes())
        entries = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"no readable {MANIFEST} ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"format {manifest.get('format')} is not {FORMAT}")
    files: dict[str, bytes] = {}
    for name, entry in entries.items():
        try:
            data = (path / name).read_bytes()
        except OSError as exc:
            raise CheckpointError(f"{name} is missing ({exc.strerror})") from None
        if len(data) != entry["bytes"]:
            raise CheckpointError(f"{name} has {len(data)} bytes, manifest says {entry['bytes']} (truncated?)")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise CheckpointError(f"{name} does not match its SHA-256 (corrupted)")
        files[name] = data
    meta = json.loads(files["meta.json"])
    return Checkpoint(path=path, step=int(manifest["step"]), meta=meta, files=files)


def _safetensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    # clone: safetensors refuses tensors that share storage (tied weights) or are views
    return save_safetensors({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()})


def _write_synced(path: Path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
