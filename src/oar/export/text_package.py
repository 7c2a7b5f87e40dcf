"""Write a text-classification package: ``model.onnx`` + ``tokenizer.json`` + manifest.

The package is assembled in a temporary directory and moved into place only
after the parity check passes, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from oar import __version__
from oar._core.errors import OarError, ParityError
from oar.export.onnx import InputSpec, export_onnx, onnx_opset
from oar.export.parity import DEFAULT_TOLERANCE, check_parity
from oar.package import Lineage, Manifest, ModelPackage, RuntimeSpec, TensorSpec
from oar.package.manifest import text_classifier_signature

TEXT_INPUT = InputSpec([None, None], "int64", "input_ids")


def save_text_classifier(
    model: nn.Module,
    path: str | Path,
    *,
    name: str,
    tokenizer: Tokenizer,
    labels: list[str],
    parity_batches: Iterable[torch.Tensor],
    metrics: dict[str, float] | None = None,
    dataset: dict[str, Any] | None = None,
    run_id: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ModelPackage:
    """Export, parity-check and write the package at ``path`` (which must not exist yet)."""
    target = Path(path)
    if target.exists():
        raise OarError(f"{target} already exists; choose a new path for the package")
    staging = Path(tempfile.mkdtemp(prefix=".oar-export-", dir=target.parent if target.parent.exists() else None))
    try:
        onnx_path, exporter = export_onnx(model, staging / "model.onnx", [TEXT_INPUT], ["logits"])
        parity = check_parity(model, onnx_path, parity_batches, tolerance)
        if not parity.passed:
            raise ParityError(
                f"exported graph disagrees with PyTorch: max abs diff {parity.max_abs_diff:.2e} "
                f"(tolerance {tolerance:.0e}), argmax agreement {parity.argmax_agreement:.4f}; not saved"
            )
        tokenizer.save(str(staging / "tokenizer.json"))
        inputs, outputs = text_classifier_signature(len(labels))
        manifest = Manifest(
            name=name,
            task="text-classification",
            labels=labels,
            inputs=inputs,
            outputs=outputs,
            runtime=RuntimeSpec(
                opset=onnx_opset(onnx_path),
                exporter=exporter,
                graph_inputs=[TensorSpec(name="input_ids", datatype="INT64", shape=[-1, -1])],
                graph_outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, len(labels)])],
            ),
            metrics=dict(metrics or {}),
            parity=parity,
            lineage=Lineage(dataset=dataset, run_id=run_id, oar_version=__version__),
        )
        ModelPackage.write(staging, manifest)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ModelPackage.open(target)
