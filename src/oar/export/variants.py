"""``oar quantize``: derive a quantized version of a registered model, measure it, gate it, register it.

The variant is built next to the hub, measured against its parent on the parent's own test
split, and registered only if it passes the accuracy gate: under its own name
(``<parent>-<method>``, manifest ``variant`` = the method, lineage.parent -> the parent), so
``oar serve <parent>`` keeps serving the parent and serving the variant is an explicit choice.
Quantizing the same parent the same way again returns the version already registered.
Being slower than fp32 does not block it, but is flagged in the report
and recorded in the manifest.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from oar import __version__
from oar._core.errors import OarError
from oar.export.lineage_data import dataset_of, sample, token_batches
from oar.export.quantize import DEFAULT_BLOCK_SIZE, METHODS, quantize_onnx
from oar.export.reexport import resolve_model
from oar.export.report import DEFAULT_MAX_ACCURACY_DROP, VariantReport, measure_variant
from oar.export.source import SOURCE_DIR
from oar.hub import Hub, ModelVersion
from oar.package import MANIFEST_FILE, Lineage, Manifest, ModelPackage
from oar.protocol.datatypes import numpy_dtype

CALIBRATION_BATCH = 16
_QUANTIZABLE = ("text-classification", "image-classification")


@dataclass(frozen=True)
class QuantizeOptions:
    method: str
    block_size: int = DEFAULT_BLOCK_SIZE
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    calibration_samples: int = 256
    dataset: str | None = None  # default: the dataset in the parent's lineage
    name: str | None = None  # default: "<parent name>-<method>"; never the parent's own name
    latency_repeats: int = 30

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise OarError(f"unknown quantization method '{self.method}'; use one of {', '.join(METHODS)}")
        if self.max_accuracy_drop < 0:
            raise OarError(f"--max-accuracy-drop must be >= 0 points, got {self.max_accuracy_drop:g}")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise OarError(f"--block-size must be a power of two >= 16, got {self.block_size}")
        if self.calibration_samples < 1:
            raise OarError(f"--calibration-samples must be >= 1, got {self.calibration_samples}")


@dataclass(frozen=True)
class QuantizeOutcome:
    parent: ModelVersion
    report: VariantReport
    refused: str | None
    registered: ModelVersion | None
    settings: dict[str, Any]  # what quantize_onnx did (method settings, ops, static quantization's pre-pass)


def quantize_registered(hub: Hub, spec: str, options: QuantizeOptions) -> QuantizeOutcome:
    """Quantize ``spec`` (NAME, NAME:VERSION or run id) with ``options.method``."""
    parent = resolve_model(hub, spec)
    package = hub.open_version(parent)
    manifest = package.manifest
    name = options.name or f"{manifest.name}-{options.method}"
    if name == manifest.name:
        raise OarError(
            f"a variant gets its own name, so `oar serve {manifest.name}` keeps serving the unquantized model; "
            f"drop --name (default {manifest.name}-{options.method}) or choose another"
        )
    if manifest.task not in _QUANTIZABLE or manifest.runtime.engine != "onnxruntime":
        raise OarError(f"oar quantize handles ONNX text and image classifiers; {parent.model_id} is not one")
    if manifest.quantization is not None:
        raise OarError(
            f"{parent.model_id} is already quantized ({manifest.quantization.get('method')}); "
            f"quantize its fp32 parent {manifest.lineage.parent} instead"
        )
    dataset = dataset_of(package, options.dataset)
    calibration = None
    if options.method == "int8-static":
        calibration = _calibration_batches(package, dataset.train.x, options.calibration_samples)
    with tempfile.TemporaryDirectory(dir=hub.artifacts.root / "tmp") as tmp:
        staging = _copy_without_model(package, Path(tmp) / "variant")
        model_file = manifest.runtime.model_file
        settings = quantize_onnx(
            package.file(model_file),
            staging / model_file,
            options.method,
            calibration=calibration,
            input_name=manifest.runtime.graph_inputs[0].name,
            block_size=options.block_size,
        )
        draft = _variant_manifest(manifest, parent, settings)
        ModelPackage.write(staging, draft)
        report = measure_variant(
            package.path, staging, options.method, dataset.test.x, dataset.test.y, options.latency_repeats
        )
        refused = report.refusal(options.max_accuracy_drop)
        if refused is not None:
            return QuantizeOutcome(parent, report, refused, None, settings)
        final = draft.model_copy(
            update={
                "metrics": {"test_accuracy": report.variant.accuracy},
                "quantization": settings | report.to_record(options.max_accuracy_drop),
            }
        )
        written = ModelPackage.write(staging, final)
        registered = _same_files(hub, name, written.manifest.files) or hub.register_model(staging, name)
    return QuantizeOutcome(parent, report, None, registered, settings)


def _same_files(hub: Hub, name: str, files: dict[str, str]) -> ModelVersion | None:
    """A version of ``name`` whose files are exactly these: registering again would only duplicate it."""
    return next((m for m in hub.models.list() if m.name == name and m.manifest.get("files") == files), None)


def _calibration_batches(package: ModelPackage, train_x: Any, samples: int) -> Iterator[np.ndarray]:
    """Real training inputs in batches of ``CALIBRATION_BATCH``: token ids for text, the images themselves else."""
    manifest = package.manifest
    if manifest.task == "text-classification":
        tokenizer = Tokenizer.from_file(str(package.file(manifest.runtime.tokenizer_file or "tokenizer.json")))
        return token_batches(tokenizer, sample(train_x, samples), CALIBRATION_BATCH)
    x = np.asarray(train_x)
    index = np.sort(np.random.default_rng(0).choice(len(x), size=min(samples, len(x)), replace=False))
    dtype = numpy_dtype(manifest.runtime.graph_inputs[0].datatype)
    return (x[index[i : i + CALIBRATION_BATCH]].astype(dtype) for i in range(0, len(index), CALIBRATION_BATCH))


def _copy_without_model(package: ModelPackage, staging: Path) -> Path:
    """Everything but the model file, the manifest and the torch source (a variant has none)."""
    skip = {package.manifest.runtime.model_file, MANIFEST_FILE}
    for rel in package.manifest.files:
        if rel in skip or rel.startswith(f"{SOURCE_DIR}/"):
            continue
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(package.file(rel), staging / rel)
    staging.mkdir(parents=True, exist_ok=True)
    return staging


def _variant_manifest(manifest: Manifest, parent: ModelVersion, settings: dict) -> Manifest:
    runtime = manifest.runtime.model_copy(update={"exporter": f"{manifest.runtime.exporter}+{settings['method']}"})
    lineage = Lineage(
        dataset=manifest.lineage.dataset,
        run_id=manifest.lineage.run_id,
        parent=parent.model_id,
        oar_version=__version__,
    )
    return manifest.model_copy(
        update={
            "version": None,
            "runtime": runtime,
            "parity": None,
            "quantization": settings,
            "variant": settings["method"],
            "lineage": lineage,
            "metrics": {},
        }
    )
