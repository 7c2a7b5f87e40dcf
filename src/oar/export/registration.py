"""``oar models register DIR``: admit a package written elsewhere (``oar.jit.save``, a copy) into the hub.

The hub stores what it is given under a content digest, so the package must be proven whole first:
a valid manifest, every listed file present with its recorded digest, no file the manifest does not
list (it would be stored unverified), no link or path leaving the directory, and a model that loads
in the runtime with the graph inputs the manifest declares. Any failure is one line, and nothing is
registered.
"""

from __future__ import annotations

from pathlib import Path

from oar._core.errors import IntegrityError, OarError
from oar.export.graph_signature import graph_signature
from oar.hub import Hub, ModelVersion
from oar.package import MANIFEST_FILE, ModelPackage
from oar.runtime import load_runtime


def validate_package(path: str | Path) -> ModelPackage:
    """The package at ``path``, or an ``OarError`` saying what is wrong with it."""
    root = Path(path)
    if not root.is_dir():
        raise OarError(f"{root} is not a directory; pass the folder holding {MANIFEST_FILE}")
    root = root.resolve()
    package = ModelPackage.open(root)  # manifest schema and file digests
    manifest = package.manifest
    for rel in manifest.files:
        if Path(rel).is_absolute() or not (root / rel).resolve().is_relative_to(root):
            raise IntegrityError(f"package {root}: file '{rel}' in its manifest lies outside the package")
    present = set()
    for file in root.rglob("*"):
        if file.is_symlink():
            raise IntegrityError(f"package {root}: {file.relative_to(root)} is a link; copy the file in instead")
        if file.is_file() and file.name != MANIFEST_FILE:
            present.add(file.relative_to(root).as_posix())
    unlisted = sorted(present - set(manifest.files))
    if unlisted:
        raise IntegrityError(f"package {root}: {', '.join(unlisted[:5])} not listed in its manifest (no digest)")
    needed = [
        manifest.runtime.model_file,
        *([manifest.runtime.tokenizer_file] if manifest.runtime.tokenizer_file else []),
    ]
    missing = [rel for rel in needed if rel not in manifest.files]
    if missing:
        raise IntegrityError(f"package {root}: its manifest does not list {', '.join(missing)}")
    if manifest.runtime.engine == "onnxruntime":
        _check_graph(package)
    return package


def register_package(hub: Hub, path: str | Path, name: str | None = None) -> ModelVersion:
    """Validate, then register at the next version of ``name`` (default: the manifest's)."""
    package = validate_package(path)
    return hub.register_model(package.path, name)


def _check_graph(package: ModelPackage) -> None:
    manifest = package.manifest
    try:
        graph_inputs, _ = graph_signature(package.file(manifest.runtime.model_file))
        load_runtime(package)
    except OarError as exc:
        raise OarError(f"package {package.path}: {exc}") from None
    except Exception as exc:  # onnx / onnxruntime raise many types for a broken model file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OarError(f"package {package.path}: {manifest.runtime.model_file} does not load: {first[:200]}") from None
    declared = {(t.name, t.datatype) for t in manifest.runtime.graph_inputs}
    actual = {(t.name, t.datatype) for t in graph_inputs}
    if declared != actual:
        raise OarError(
            f"package {package.path}: the manifest declares graph inputs {sorted(declared)} but the model takes "
            f"{sorted(actual)}"
        )
