"""Content-addressed artifact storage: where the hub keeps package directories, by the digest of their content.

Two backends behind one interface: files under ``OAR_HOME/artifacts`` (the embedded default) and an
S3-compatible object store (``OAR_ARTIFACTS_URL=s3://bucket/prefix``, :mod:`oar.hub.object_store`), read
through a local cache on each machine. Either way storing the same content twice is a no-op, a half-copied
package is never visible, and :meth:`ArtifactStore.fetch` hands back a local directory to open.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from oar._core.digest import sha256_tree
from oar._core.errors import InvalidInputError, NotFoundError


class ArtifactStore:
    """Packages as directories under ``root/packages`` on this machine's disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "packages").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    @property
    def location(self) -> str:
        return str(self.root / "packages")

    def package_path(self, digest: str) -> Path:
        """Where the package lives (or will, once fetched) on this machine."""
        return self.root / "packages" / digest.removeprefix("sha256:")

    def staging_dir(self) -> Path:
        """A fresh directory on the same filesystem, so the final rename is atomic."""
        return Path(tempfile.mkdtemp(dir=self.root / "tmp"))

    def commit_package(self, staged: Path) -> tuple[str, Path]:
        digest = sha256_tree(staged)
        final = self.package_path(digest)
        if final.exists():
            shutil.rmtree(staged)
        else:
            staged.rename(final)
        return digest, final

    def fetch(self, digest: str) -> Path:
        """A local directory holding the package (``NotFoundError`` if the store has no such package)."""
        path = self.package_path(digest)
        if not path.is_dir():
            raise NotFoundError(f"package {digest} is not in the artifact store ({self.location})")
        return path

    def digests(self) -> Iterator[str]:
        """Every package the store holds."""
        for path in (self.root / "packages").iterdir():
            if path.is_dir():
                yield f"sha256:{path.name}"

    def stored_at(self, digest: str) -> datetime:
        return datetime.fromtimestamp(self.package_path(digest).stat().st_mtime, UTC)

    def size(self, digest: str) -> int:
        """The package's bytes (``NotFoundError`` if the store has no such package)."""
        return sum(p.stat().st_size for p in self.fetch(digest).rglob("*") if p.is_file())

    def read_file(self, digest: str, rel: str) -> bytes:
        """One file of a stored package, without fetching the rest."""
        return (self.fetch(digest) / rel).read_bytes()

    def remove(self, digest: str) -> None:
        shutil.rmtree(self.package_path(digest), ignore_errors=True)


def open_artifact_store(root: Path, url: str | None = None) -> ArtifactStore:
    """The store ``url`` names (``OAR_ARTIFACTS_URL`` when not given): local files by default, or ``s3://``."""
    url = url if url is not None else os.environ.get("OAR_ARTIFACTS_URL", "")
    if not url or url.startswith("file:"):
        return ArtifactStore(Path(url.removeprefix("file://")) if url else root)
    if url.startswith("s3://"):
        from oar.hub.object_store import ObjectArtifactStore

        return ObjectArtifactStore(root, url)
    raise InvalidInputError(
        f"bad OAR_ARTIFACTS_URL '{url}': use s3://bucket/prefix (or leave it unset for local files)"
    )
