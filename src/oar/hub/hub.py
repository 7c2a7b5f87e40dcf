"""The hub: datasets, runs and model versions with their lineage, in one façade."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.orm import sessionmaker

from oar._core.errors import OarError
from oar._core.settings import database_url, oar_home
from oar.data.dataset import Dataset
from oar.hub.aliases import AliasStore
from oar.hub.artifacts import open_artifact_store
from oar.hub.catalog import DatasetCatalog, ModelCatalog
from oar.hub.entities import DatasetVersion, ModelVersion
from oar.hub.orm import ModelRow
from oar.hub.schema import migrate
from oar.hub.stores import DatasetStore, ModelStore, RunStore
from oar.hub.usage import StorageReport, storage_report
from oar.package import ModelPackage

_REGISTER_RETRIES = 5


class Hub:
    """Registry of everything oar produces. ``Hub()`` uses ``OAR_HOME`` / ``OAR_DATABASE_URL``.

    >>> hub = Hub()
    >>> hub.models.get("chnsenti-cls").model_id
    'chnsenti-cls:1'
    """

    def __init__(
        self, home: str | Path | None = None, url: str | None = None, artifacts_url: str | None = None
    ) -> None:
        self.home = Path(home) if home else oar_home()
        self.home.mkdir(parents=True, exist_ok=True)
        if url is None:
            url = database_url() if home is None else f"sqlite:///{self.home / 'hub.db'}"
        self.url = url
        if url.startswith("sqlite"):
            self.engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        self.artifacts = open_artifact_store(self.home / "artifacts", artifacts_url)
        migrate(self.engine, self.artifacts)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.datasets = DatasetStore(self.sessions)
        self.runs = RunStore(self.sessions)
        self.models = ModelStore(self.sessions, self.artifacts.package_path)
        self.aliases = AliasStore(self.sessions)
        self.model_catalog = ModelCatalog(self.sessions)
        self.dataset_catalog = DatasetCatalog(self.sessions)

    def register_dataset(self, dataset: Dataset, owner: str | None = None) -> DatasetVersion:
        """Record a dataset version with its card, split sizes and a few sample rows per split."""
        counts = {**dataset.counts(), "labels": dataset.label_counts()}
        return self.datasets.register(
            dataset.name, dataset.digest, dataset.card.to_dict(), counts, samples=_samples(dataset), owner=owner
        )

    def register_model(
        self, package_dir: str | Path, name: str | None = None, owner: str | None = None
    ) -> ModelVersion:
        """Copy a package into the artifact store under the next version of ``name``."""
        source = ModelPackage.open(package_dir)
        name = name or source.manifest.name
        for _ in range(_REGISTER_RETRIES):
            version = self.models.next_version(name)
            staged = self.artifacts.staging_dir()
            shutil.copytree(source.path, staged, dirs_exist_ok=True)
            manifest = source.manifest.model_copy(update={"name": name, "version": version})
            ModelPackage.write(staged, manifest)
            size = sum(p.stat().st_size for p in staged.rglob("*") if p.is_file())
            try:
                digest, _ = self.artifacts.commit_package(staged)
            except BaseException:  # a failed upload registers nothing and leaves nothing staged
                shutil.rmtree(staged, ignore_errors=True)
                raise
            row = ModelRow(
                name=name,
                version=version,
                digest=digest,
                task=manifest.task,
                run_id=manifest.lineage.run_id,
                parent=manifest.lineage.parent,
                manifest=manifest.model_dump(mode="json"),
                size=size,
            )
            registered = self.models.insert(row, owner=owner)
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
            self.artifacts.remove(removed.digest)
        return removed

    def open_package(self, name: str, version: int | None = None) -> ModelPackage:
        """The package of ``name:version``, fetched from the artifact store into this machine's cache if needed."""
        return self.open_version(self.models.get(name, version))

    def open_version(self, model: ModelVersion) -> ModelPackage:
        """``model``'s package on this machine's disk, the one way every consumer reads a registered package.

        ``ModelVersion.path`` only says where the package sits once it is here: with an object store a
        machine holds just the packages it used lately (a size-capped cache). This downloads what is
        missing and checks it against ``model.digest`` first; a package already here costs one stat.
        """
        return ModelPackage.open(self.artifacts.fetch(model.digest))

    def storage(self, owner: str | None = None) -> StorageReport:
        """Bytes and versions per owner (every owner, or ``owner``'s), from the sizes recorded at registration."""
        return storage_report(self.sessions, owner)

    def close(self) -> None:
        self.engine.dispose()


SAMPLE_ROWS = 50


def _samples(dataset: Dataset) -> dict[str, list[dict[str, object]]]:
    """The first rows of each split (splits are shuffled with a fixed seed, so these are a fair look).

    Texts are stored as they are; image rows as their shape only (the pixels stay in the dataset).
    """
    out: dict[str, list[dict[str, object]]] = {}
    for split_name in ("train", "valid", "test"):
        split = getattr(dataset, split_name).head(SAMPLE_ROWS)
        rows: list[dict[str, object]] = []
        for i, label in enumerate(split.y.tolist()):
            x = split.x[i]
            shown: object = x if isinstance(x, str) else f"array{list(getattr(x, 'shape', ()))}"
            rows.append({"input": shown, "label": dataset.labels[label] if label < len(dataset.labels) else label})
        out[split_name] = rows
    return out


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """WAL lets a server read while a trainer writes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
