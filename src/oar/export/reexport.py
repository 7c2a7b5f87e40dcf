"""``oar export``: re-export a registered model (or a run's model) from its source weights.

The new package is parity-checked on the validation split of the model's own dataset and
registered only when it passes; its lineage points at the package it came from. Exporting
again what a version already holds (same source weights, tokenizer, format and oar version)
returns that version instead of registering a duplicate.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tokenizers import Tokenizer

from oar import __version__
from oar._core.errors import NotFoundError, OarError
from oar.export.lineage_data import dataset_of, tensor_batches
from oar.export.parity import DEFAULT_TOLERANCE
from oar.export.source import load_source
from oar.export.text_package import FORMATS, ExportFormat, save_text_classifier
from oar.hub import Hub, ModelVersion
from oar.package import ModelPackage


def resolve_model(hub: Hub, spec: str) -> ModelVersion:
    """``NAME``, ``NAME:VERSION`` or a run id (the model that run registered)."""
    name, _, version = spec.partition(":")
    if not version:
        try:
            run = hub.runs.get(spec)
        except NotFoundError:
            run = None
        if run is not None:
            produced = run.metrics.get("model")
            if not produced:
                raise OarError(f"run {spec} registered no model (status {run.status})")
            return resolve_model(hub, str(produced))
    if version and not version.isdigit():
        raise OarError(f"bad model '{spec}': use NAME, NAME:VERSION or a run id")
    return hub.models.get(name, int(version) if version else None)


def export_registered(
    hub: Hub,
    spec: str,
    format: ExportFormat = "onnx",
    name: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ModelVersion:
    """Export ``spec``'s source model in ``format``; register the result if parity holds."""
    if format not in FORMATS:
        raise OarError(f"unknown export format '{format}'; use one of {', '.join(FORMATS)}")
    parent = resolve_model(hub, spec)
    package = hub.open_version(parent)
    manifest = package.manifest
    if manifest.task != "text-classification":
        raise OarError(f"oar export handles text classifiers; {parent.model_id} is '{manifest.task}'")
    model = load_source(package)
    tokenizer = Tokenizer.from_file(str(package.file(manifest.runtime.tokenizer_file or "tokenizer.json")))
    dataset = dataset_of(package)
    default_name = manifest.name if format == "onnx" else f"{manifest.name}-pt2"
    already = _identical_export(hub, name or default_name, package, format)
    if already is not None:
        return already
    with tempfile.TemporaryDirectory(dir=hub.artifacts.root / "tmp") as tmp:
        exported = save_text_classifier(
            model,
            Path(tmp) / "package",
            name=name or default_name,
            tokenizer=tokenizer,
            labels=manifest.labels,
            parity_batches=tensor_batches(tokenizer, dataset.valid.x),
            metrics=manifest.metrics,
            dataset=manifest.lineage.dataset,
            run_id=manifest.lineage.run_id,
            parent=parent.model_id,
            tolerance=tolerance,
            format=format,
            keep_source=True,
        )
        return hub.register_model(exported.path)


_ENGINES = {"onnx": "onnxruntime", "torch-export": "torch-export"}


def _identical_export(hub: Hub, name: str, package: ModelPackage, format: ExportFormat) -> ModelVersion | None:
    """A version of ``name`` exported in ``format`` from the same source and tokenizer by this oar version.

    The exported graph itself is not compared: the exporter records source file paths in it, so
    the bytes differ between checkouts while the model does not.
    """
    manifest = package.manifest
    inputs = {rel: digest for rel, digest in manifest.files.items() if rel != manifest.runtime.model_file}
    for candidate in hub.models.list():
        other = candidate.manifest
        if candidate.name != name or other["runtime"]["engine"] != _ENGINES[format]:
            continue
        kept = {rel: digest for rel, digest in other["files"].items() if rel != other["runtime"]["model_file"]}
        if kept == inputs and other["lineage"]["oar_version"] == __version__ and other["labels"] == manifest.labels:
            return candidate
    return None
