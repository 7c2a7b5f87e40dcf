"""The models a server holds: loaded runtimes, each with its batcher, keyed by name and version.

Packages come from a ``PackageSource``: the hub, or a directory laid out as
``ROOT/<name>/<version>/manifest.json``. Loading is swap-in: the new versions
are built completely (off the event loop) before they replace the old ones,
so a failed load leaves the old version serving, and a reload under traffic
fails no request: the retired version finishes its queue before it is closed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from oar._core.errors import InvalidInputError, ModelNotFoundError, NotFoundError, OarError
from oar.hub import Hub, parse_model_ref
from oar.package import Manifest, ModelPackage
from oar.protocol.datatypes import numpy_dtype
from oar.runtime import Runtime, load_runtime
from oar.serve.batching import DynamicBatcher
from oar.serve.config import BatchingConfig, VersionPolicy
from oar.serve.generation import GenerationQueue
from oar.serve.metrics import ModelMetrics, ServerMetrics

log = logging.getLogger(__name__)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    manifest: Manifest
    runtime: Runtime
    batcher: DynamicBatcher | GenerationQueue  # text-to-image models queue generations, never batch them
    metrics: ModelMetrics

    @functools.cached_property  # read on every request: built once (the manifest never changes)
    def output_datatypes(self) -> dict[str, str]:
        return {o.name: o.datatype for o in self.manifest.outputs}

    @functools.cached_property
    def input_dtypes(self) -> dict[str, np.dtype]:
        """Each input's NumPy dtype, which a request's tensors must have."""
        return {i.name: numpy_dtype(i.datatype) for i in self.manifest.inputs}


def parse_model_spec(spec: str, hub: Hub | None = None) -> tuple[str, int | None]:
    """``"name"``, ``"name:version"`` or ``"name@alias"`` -> (name, version or None for the version policy).

    An alias is resolved to the version it points at now, in ``hub`` (``Hub()`` when not given).
    """
    ref = parse_model_ref(spec)
    if ref.alias is None:
        return ref.name, ref.version
    return ref.name, (hub or Hub()).models.resolve(ref).version


class PackageSource(Protocol):
    def names(self) -> list[str]: ...
    def versions(self, name: str) -> list[int]: ...
    def open(self, name: str, version: int) -> ModelPackage: ...


class HubSource:
    """Registered models of a hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def names(self) -> list[str]:
        return sorted({m.name for m in self.hub.models.list()})

    def versions(self, name: str) -> list[int]:
        return sorted(m.version for m in self.hub.models.list() if m.name == name)

    def open(self, name: str, version: int) -> ModelPackage:
        return self.hub.open_package(name, version)


class DirectorySource:
    """Packages in ``root/<name>/<version>/`` (numeric version folders, as in Triton's repositories)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise OarError(f"model directory {self.root} does not exist")

    def names(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name) and self.versions(p.name)
        )

    def versions(self, name: str) -> list[int]:
        folder = self._model_dir(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / "manifest.json").is_file())

    def open(self, name: str, version: int) -> ModelPackage:
        package = ModelPackage.open(self._model_dir(name) / str(version))
        return package if package.manifest.version else _with_version(package, version)

    def _model_dir(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise InvalidInputError(f"bad model name '{name}': use letters, digits, '.', '_' and '-'")
        return self.root / name


def _with_version(package: ModelPackage, version: int) -> ModelPackage:
    return ModelPackage(package.path, package.manifest.model_copy(update={"version": version}))


class ModelRepository:
    """Answers "which model serves name[/version]" and loads, reloads and unloads models."""

    def __init__(
        self,
        source: PackageSource,
        metrics: ServerMetrics | None = None,
        batching: BatchingConfig | None = None,
        policy: VersionPolicy | None = None,
        intra_op_threads: int = 0,
    ) -> None:
        self.source = source
        self.metrics = metrics or ServerMetrics()
        self.batching = batching or BatchingConfig()
        self.policy = policy or VersionPolicy()
        self.intra_op_threads = intra_op_threads
        self._models: dict[str, dict[int, LoadedModel]] = {}
        self._failed: dict[str, str] = {}
        self._retiring: set[asyncio.Task] = set()
        self._lock: asyncio.Lock | None = None

    # --- startup (no event loop yet) -------------------------------------------------------------
    def load_initial(self, specs: list[str]) -> list[LoadedModel]:
        """``NAME`` (versions by the policy) or ``NAME:VERSION``; every model in the source when empty."""
        wanted: dict[str, VersionPolicy | None] = {}
        for spec in specs:
            name, version = parse_model_spec(spec, getattr(self.source, "hub", None))
            wanted[name] = VersionPolicy(kind="specific", versions=(version,)) if version else None
        for name, policy in wanted.items():
            self._models[name] = self._build_versions(name, policy or self.policy, {})
        if not specs:
            self._load_every_servable_model()
        return self.models()

    def _load_every_servable_model(self) -> None:
        """With no models named, serve what can be served; the rest show in the index with the reason."""
        for name in self.source.names():
            try:
                self._models[name] = self._build_versions(name, self.policy, {})
            except OarError as exc:
                log.warning("not serving '%s': %s", name, exc)
                self._failed[name] = str(exc)

    # --- queries (hot path) ----------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> LoadedModel:
        versions = self._models.get(name)
        if not versions:
            served = ", ".join(sorted(self._models)) or "none"
            raise ModelNotFoundError(f"model '{name}' is not served here; served models: {served}")
        if not version:
            return versions[max(versions)]
        if not version.isdigit() or int(version) not in versions:
            listed = ", ".join(str(v) for v in sorted(versions))
            raise ModelNotFoundError(f"model '{name}' has no version '{version}' here; versions: {listed}")
        return versions[int(version)]

    def models(self) -> list[LoadedModel]:
        return [m for versions in self._models.values() for m in versions.values()]

    def versions_of(self, name: str) -> list[int]:
        return sorted(self._models.get(name, {}))

    def index(self) -> list[dict[str, str]]:
        """Every model the source holds, and its state here (the repository extension's index)."""
        entries = []
        for name in sorted(set(self.source.names()) | set(self._models)):
            loaded = self._models.get(name, {})
            available = set(self.source.versions(name)) | set(loaded)
            for version in sorted(available):
                state = "READY" if version in loaded else "UNAVAILABLE"
                entry = {"name": name, "version": str(version), "state": state}
                if state != "READY" and name in self._failed:
                    entry["reason"] = self._failed[name]
                entries.append(entry)
        return entries

    # --- control ---------------------------------------------------------------------------------
    async def load(self, name: str, policy: VersionPolicy | None = None) -> list[LoadedModel]:
        """(Re)load ``name``: build what the policy selects, then swap it in; on failure keep the old."""
        async with self._control_lock():
            current = self._models.get(name, {})
            try:
                fresh = await asyncio.to_thread(self._build_versions, name, policy or self.policy, current)
            except OarError as exc:
                self._failed[name] = str(exc)
                raise
            except Exception as exc:  # a broken package must not take the server down
                log.exception("loading model '%s' failed", name)
                self._failed[name] = f"load failed: {exc}"
                raise OarError(f"loading model '{name}' failed: {exc}") from None
            self._failed.pop(name, None)
            self._models[name] = fresh
            self._retire([m for v, m in current.items() if fresh.get(v) is not m])
            return list(fresh.values())

    async def unload(self, name: str) -> None:
        async with self._control_lock():
            current = self._models.pop(name, None)
            if current is None:
                raise ModelNotFoundError(
                    f"model '{name}' is not loaded; loaded: {', '.join(sorted(self._models)) or 'none'}"
                )
            self._retire(list(current.values()))

    async def drain(self, timeout: float = 30.0) -> None:
        """Let every model finish its queue (graceful shutdown)."""
        for model in self.models():
            model.batcher.close()
        await asyncio.gather(*(m.batcher.drain(timeout) for m in self.models()), *self._retiring)

    def _retire(self, models: list[LoadedModel]) -> None:
        for model in models:
            model.batcher.close()
            task = asyncio.get_running_loop().create_task(model.batcher.drain())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    def _control_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _build_versions(
        self, name: str, policy: VersionPolicy, current: dict[int, LoadedModel]
    ) -> dict[int, LoadedModel]:
        available = self.source.versions(name)
        if not available:
            raise NotFoundError(
                f"no model '{name}' in the repository; models: {', '.join(self.source.names()) or 'none'}"
            )
        return {v: current.get(v) or self._build(name, v) for v in policy.select(available)}

    def _build(self, name: str, version: int) -> LoadedModel:
        package = self.source.open(name, version)
        runtime = load_runtime(package, self.intra_op_threads)
        metrics = self.metrics.for_model(name, version)
        batcher: DynamicBatcher | GenerationQueue
        if package.manifest.task == "text-to-image":
            batcher = GenerationQueue(name, runtime, metrics, self.batching.timeout_us)  # type: ignore[arg-type]
        else:
            batcher = DynamicBatcher(name, runtime.infer, self.batching, metrics)
        return LoadedModel(name, version, package.manifest, runtime, batcher, metrics)
