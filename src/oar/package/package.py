"""Read and write package directories, verifying file digests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from oar._core.digest import sha256_file
from oar._core.errors import IntegrityError, OarError
from oar.package.manifest import Manifest

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ModelPackage:
    """A package on disk. ``ModelPackage.open(path)`` validates it; ``path / name`` gives its files."""

    path: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> ModelPackage:
        root = Path(path)
        manifest_path = root / MANIFEST_FILE
        if not manifest_path.is_file():
            raise OarError(f"{root} is not a model package: it has no {MANIFEST_FILE}")
        try:
            manifest = Manifest.model_validate_json(manifest_path.read_bytes())
        except ValidationError as exc:
            raise OarError(f"invalid {MANIFEST_FILE} in {root}: {exc}") from None
        package = cls(root, manifest)
        if verify:
            package.verify()
        return package

    @classmethod
    def write(cls, path: str | Path, manifest: Manifest) -> ModelPackage:
        """Record the digests of the files already in ``path`` and write the manifest beside them."""
        root = Path(path)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
        manifest = manifest.model_copy(
            update={"files": {p.relative_to(root).as_posix(): sha256_file(p) for p in files}}
        )
        (root / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return cls(root, manifest)

    def verify(self) -> None:
        """Fail loudly if a file was changed or lost since the manifest was written."""
        for rel, digest in self.manifest.files.items():
            file = self.path / rel
            if not file.is_file():
                raise IntegrityError(f"package {self.path} lacks {rel}, listed in its manifest")
            if sha256_file(file) != digest:
                raise IntegrityError(f"package {self.path}: {rel} does not match its recorded digest")

    def file(self, rel: str) -> Path:
        return self.path / rel

    @property
    def model_id(self) -> str:
        return f"{self.manifest.name}:{self.manifest.version}"


@contextmanager
def staged_package(target: Path) -> Iterator[Path]:
    """Build a package in a temporary directory; move it to ``target`` only if the block succeeds.

    A failed export (parity, exporter error) therefore leaves nothing behind at ``target``.
    """
    if target.exists():
        raise OarError(f"{target} already exists; choose a new path for the package")
    staging = Path(tempfile.mkdtemp(prefix=".oar-export-", dir=target.parent if target.parent.exists() else None))
    try:
        yield staging
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
