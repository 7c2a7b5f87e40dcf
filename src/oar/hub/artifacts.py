"""Content-addressed artifact storage under ``OAR_HOME/artifacts``.

A package directory is stored once under the digest of its content; storing
the same content twice is a no-op, and a half-copied directory is never
visible because it is renamed into place only when complete.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from oar._core.digest import sha256_tree


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "packages").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def package_path(self, digest: str) -> Path:
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
