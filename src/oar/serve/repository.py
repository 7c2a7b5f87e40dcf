"""The models a server holds: loaded runtimes keyed by name and version."""

from __future__ import annotations

from dataclasses import dataclass

from oar._core.errors import InvalidInputError, ModelNotFoundError
from oar.hub import Hub
from oar.package import Manifest
from oar.runtime import TextClassifierRuntime, load_runtime


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    manifest: Manifest
    runtime: TextClassifierRuntime

    @property
    def output_datatypes(self) -> dict[str, str]:
        return {o.name: o.datatype for o in self.manifest.outputs}


def parse_model_spec(spec: str) -> tuple[str, int | None]:
    """``"name"`` or ``"name:version"`` -> (name, version or None for the latest)."""
    name, _, version = spec.partition(":")
    if not name:
        raise InvalidInputError(f"bad model '{spec}': use NAME or NAME:VERSION")
    if not version:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInputError(f"bad model '{spec}': the version must be a positive integer")
    return name, int(version)


class ModelRepository:
    """Loads packages from the hub and answers "which runtime serves name[/version]"."""

    def __init__(self, hub: Hub, intra_op_threads: int = 0) -> None:
        self.hub = hub
        self.intra_op_threads = intra_op_threads
        self._models: dict[str, dict[int, LoadedModel]] = {}

    def load(self, name: str, version: int | None = None) -> LoadedModel:
        package = self.hub.open_package(name, version)
        runtime = load_runtime(package, self.intra_op_threads)
        model = LoadedModel(name, package.manifest.version or 1, package.manifest, runtime)
        self._models.setdefault(name, {})[model.version] = model
        return model

    def load_all_latest(self) -> list[LoadedModel]:
        names = sorted({m.name for m in self.hub.models.list()})
        return [self.load(name) for name in names]

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        versions = self._models.get(name)
        if not versions:
            served = ", ".join(sorted(self._models)) or "none"
            raise ModelNotFoundError(f"model '{name}' is not served here; served models: {served}")
        if version is None:
            return versions[max(versions)]
        if not version.isdigit() or int(version) not in versions:
            listed = ", ".join(str(v) for v in sorted(versions))
            raise ModelNotFoundError(f"model '{name}' has no version '{version}' here; versions: {listed}")
        return versions[int(version)]

    def models(self) -> list[LoadedModel]:
        return [m for versions in self._models.values() for m in versions.values()]
