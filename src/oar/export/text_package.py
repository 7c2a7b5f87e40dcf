"""Write a text-classification package: the model + ``tokenizer.json`` + manifest (+ ``source/``).

The package is assembled in a temporary directory and moved into place only
after the parity check passes, so a failed export leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import Tokenizer
from torch import nn

from oar import __version__
from oar._core.errors import OarError, ParityError
from oar.export.onnx import InputSpec, export_onnx, onnx_opset
from oar.export.padding_check import decide_padding, served_parity, unpadded_rows
from oar.export.parity import DEFAULT_TOLERANCE, check_parity
from oar.export.source import save_source
from oar.export.torch_export import check_pt2_parity, export_pt2
from oar.package import Lineage, Manifest, ModelPackage, Padding, Parity, RuntimeSpec, TensorSpec
from oar.package.manifest import text_classifier_signature
from oar.package.package import staged_package
from oar.runtime.padding import TokenBatchRunner
from oar.runtime.session import create_session

TEXT_INPUT = InputSpec([None, None], "int64", "input_ids")
ExportFormat = Literal["onnx", "torch-export"]
FORMATS: tuple[str, ...] = ("onnx", "torch-export")


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
    parent: str | None = None,
    examples: dict[str, Any] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    format: ExportFormat = "onnx",
    keep_source: bool = True,
) -> ModelPackage:
    """Export, parity-check and write the package at ``path`` (which must not exist yet).

    ``format="onnx"`` is what servers run; ``"torch-export"`` writes a ``.pt2`` for PyTorch users.
    ``examples`` records the training examples a few-shot model was taught from in its lineage.
    ``keep_source`` stores the weights under ``source/`` so ``oar export`` can re-export later.
    """
    target = Path(path)
    if format not in FORMATS:
        raise OarError(f"unknown export format '{format}'; use one of {', '.join(FORMATS)}")
    with staged_package(target) as staging:
        pad_id = int(tokenizer.padding["pad_id"]) if tokenizer.padding else 0
        runtime, parity = _export_checked(model, staging, format, len(labels), list(parity_batches), tolerance, pad_id)
        tokenizer.save(str(staging / "tokenizer.json"))
        if keep_source:
            save_source(model, staging)
        inputs, outputs = text_classifier_signature(len(labels))
        manifest = Manifest(
            name=name,
            task="text-classification",
            labels=labels,
            inputs=inputs,
            outputs=outputs,
            runtime=runtime,
            metrics=dict(metrics or {}),
            parity=parity,
            lineage=Lineage(dataset=dataset, run_id=run_id, parent=parent, examples=examples, oar_version=__version__),
        )
        ModelPackage.write(staging, manifest)
    return ModelPackage.open(target)


def _export_checked(
    model: nn.Module,
    staging: Path,
    format: str,
    num_labels: int,
    parity_batches: list[torch.Tensor],
    tolerance: float,
    pad_id: int = 0,
) -> tuple[RuntimeSpec, Parity]:
    """Write the model file in ``format``; raise ``ParityError`` unless it reproduces ``model``."""
    graph_inputs = [TensorSpec(name="input_ids", datatype="INT64", shape=[-1, -1])]
    graph_outputs = [TensorSpec(name="logits", datatype="FP32", shape=[-1, num_labels])]
    if format == "onnx":
        model_path, exporter = export_onnx(model, staging / "model.onnx", [TEXT_INPUT], ["logits"])
        parity = check_parity(model, model_path, parity_batches, tolerance)
        padding = None
        if parity.passed:
            padding, parity = _served_check(model, model_path, parity_batches, parity, tolerance, pad_id)
        runtime = RuntimeSpec(
            opset=onnx_opset(model_path),
            exporter=exporter,
            graph_inputs=graph_inputs,
            graph_outputs=graph_outputs,
            padding=padding,
        )
    else:
        model_path = export_pt2(model, staging / "model.pt2", [TEXT_INPUT])
        parity = check_pt2_parity(model, model_path, parity_batches, tolerance)
        runtime = RuntimeSpec(
            engine="torch-export",
            model_file="model.pt2",
            exporter="torch.export",
            graph_inputs=graph_inputs,
            graph_outputs=graph_outputs,
        )
    if not parity.passed:
        raise ParityError(
            f"exported {format} model disagrees with PyTorch: max abs diff {parity.max_abs_diff:.2e} "
            f"(tolerance {tolerance:.0e}), argmax agreement {parity.argmax_agreement:.4f} on "
            f"{parity.samples} samples; not saved"
        )
    return runtime, parity


@torch.no_grad()
def _served_check(
    model: nn.Module, model_path: Path, batches: list[torch.Tensor], graph: Parity, tolerance: float, pad_id: int
) -> tuple[Padding, Parity]:
    """Decide the padding from evidence, then check the served path (mixed batches) against each text alone."""
    session = create_session(model_path)
    rows = unpadded_rows((b.numpy() for b in batches), pad_id)
    padding = decide_padding(session, rows, pad_id, tolerance)
    served = served_parity(
        lambda groups: [model(torch.from_numpy(g)).numpy() for g in groups],
        TokenBatchRunner(session, padding),
        rows,
        tolerance,
        "torch",
        "texts",
    )
    merged = served.model_copy(
        update={
            "max_abs_diff": max(graph.max_abs_diff, served.max_abs_diff),
            "argmax_agreement": min(graph.argmax_agreement, served.argmax_agreement),
            "passed": graph.passed and served.passed,
            "inputs": f"{served.inputs}; and as padded batches, graph vs torch on the same ids",
        }
    )
    return padding, merged
