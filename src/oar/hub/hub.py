"""The hub: datasets, runs and model versions with their lineage, in one façade."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.orm import sessionmaker

from oar._core.errors import OarError
from oar._core.settings import database_url, oar_home
from oar.data.dataset import Dataset
from oar.hub.artifacts import ArtifactStore
from oar.hub.entities import DatasetVersion, ModelVersion
from oar.hub.orm import Base, ModelRow
from oar.hub.stores import DatasetStore, ModelStore, RunStore
from oar.package import ModelPackage

_REGISTER_RETRIES = 5


class Hub:
    """Registry of everything oar produces. ``Hub()`` uses ``OAR_HOME`` / ``OAR_DATABASE_URL``.

    >>> hub = Hub()
    >>> hub.models.get("chnsenti-cls").model_id
    'chnsenti-cls:1'
    """

    def __init__(self, home: str | Path | None = None, url: str | None = None) -> None:
        self.home = Path(home) if home else oar_home()
        self.home.mkdir(parents=True, exist_ok=True)
        if url is None:
            url = database_url() if home is None else f"sqlite:///{self.home / 'hub.db'}"
        self.engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.artifacts = ArtifactStore(self.home / "artifacts")
        self.datasets = DatasetStore(sessions)
        self.runs = RunStore(sessions)
        self.models = ModelStore(sessions, self.artifacts.package_path)

    def register_dataset(self, dataset: Dataset) -> DatasetVersion:
        counts = {**dataset.counts(), "labels": dataset.label_counts()}
        return self.datasets.register(dataset.name, dataset.digest, dataset.card.to_dict(), counts)

    def register_model(self, package_dir: str | Path, name: str | None = None) -> ModelVersion:
        """Copy a package into the artifact store under the next version of ``name``."""
        source = ModelPackage.open(package_dir)
        name = name or source.manifest.name
        for _ in range(_REGISTER_RETRIES):
            version = self.models.next_version(name)
            staged = self.artifacts.staging_dir()
            shutil.copytree(source.path, staged, dirs_exist_ok=True)
            manifest = source.manifest.model_copy(update={"name": name, "version": version})
            ModelPackage.write(staged, manifest)
            digest, _ = self.artifacts.commit_package(staged)
            row = ModelRow(
                name=name,
                version=version,
                digest=digest,
                task=manifest.task,
                run_id=manifest.lineage.run_id,
                parent=manifest.lineage.parent,
                manifest=manifest.model_dump(mode="json"),
            )
            registered = self.models.insert(row)
            if registered is not None:
                return registered
        raise OarError(f"could not register '{name}': too many concurrent registrations")

    def delete_model(self, name: str, version: int) -> ModelVersion:
        """Forget ``name:version`` and remove its package files unless another version shares them.

        Callers decide whether the version may go (``oar models delete`` refuses one that is served
        or that other versions derive from).
        """
        removed = self.models.delete(name, version)
        if not self.models.uses_digest(removed.digest):
            shutil.rmtree(removed.path, ignore_errors=True)
        return removed

    def open_package(self, name: str, version: int | None = None) -> ModelPackage:
        return ModelPackage.open(self.models.get(name, version).path)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """WAL lets a server read while a trainer writes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
