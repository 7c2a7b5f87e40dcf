"""``oar.jit.save``: the one-call export, after ``paddle.jit.save``.

>>> import oar
>>> from oar.export import InputSpec
>>> oar.jit.save(model, "out/my-model", input_spec=[InputSpec([None, 4], "float32", "x")])

With ``tokenizer=`` and ``labels=`` it writes a servable text classifier
(text in, label out); otherwise a generic package whose signature is the graph's.
"""

from __future__ import annotations

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
from oar.export.text_package import TEXT_INPUT, save_text_classifier
from oar.package import Lineage, Manifest, ModelPackage, RuntimeSpec, TensorSpec
from oar.package.package import staged_package

__all__ = ["InputSpec", "save"]

_PARITY_SAMPLES = 4


def save(
    model: nn.Module,
    path: str | Path,
    input_spec: list[InputSpec] | None = None,
    *,
    name: str | None = None,
    tokenizer: Tokenizer | None = None,
    labels: list[str] | None = None,
    parity_batches: Iterable[torch.Tensor] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    **lineage: Any,
) -> ModelPackage:
    """Export ``model`` to a parity-checked package directory at ``path``."""
    name = name or Path(path).name
    if tokenizer is not None or labels is not None:
        if tokenizer is None or not labels or parity_batches is None:
            raise OarError("a text classifier needs tokenizer=, labels= and parity_batches= (real token ids)")
        if input_spec and input_spec != [TEXT_INPUT]:
            raise OarError(f"a text classifier takes exactly {TEXT_INPUT}")
        return save_text_classifier(
            model,
            path,
            name=name,
            tokenizer=tokenizer,
            labels=labels,
            parity_batches=parity_batches,
            tolerance=tolerance,
            **lineage,
        )
    if not input_spec or len(input_spec) != 1:
        raise OarError("input_spec must list exactly one InputSpec for a generic model")
    return _save_generic(model, Path(path), name, input_spec[0], parity_batches, tolerance)


def _save_generic(
    model: nn.Module,
    target: Path,
    name: str,
    spec: InputSpec,
    parity_batches: Iterable[torch.Tensor] | None,
    tolerance: float,
) -> ModelPackage:
    with staged_package(target) as staging:
        onnx_path, exporter = export_onnx(model, staging / "model.onnx", [spec], ["output"])
        batches = parity_batches or [spec.example() for _ in range(_PARITY_SAMPLES)]
        parity = check_parity(model, onnx_path, batches, tolerance)
        if parity.max_abs_diff > tolerance:
            raise ParityError(f"exported graph differs from PyTorch by {parity.max_abs_diff:.2e}; not saved")
        with torch.no_grad():
            out_dims = list(model.eval()(spec.example()).shape[1:])
        graph_in = TensorSpec(name=spec.name, datatype=spec.datatype, shape=[d or -1 for d in spec.shape])
        graph_out = TensorSpec(name="output", datatype="FP32", shape=[-1, *out_dims])
        manifest = Manifest(
            name=name,
            task="generic",
            inputs=[graph_in],
            outputs=[graph_out],
            runtime=RuntimeSpec(
                tokenizer_file=None,
                exporter=exporter,
                opset=onnx_opset(onnx_path),
                graph_inputs=[graph_in],
                graph_outputs=[graph_out],
            ),
            parity=parity,
            lineage=Lineage(oar_version=__version__),
        )
        ModelPackage.write(staging, manifest)
    return ModelPackage.open(target)
