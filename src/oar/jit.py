"""``oar.jit.save``: the one-call export, after ``paddle.jit.save``.

>>> import oar
>>> from oar.export import InputSpec
>>> oar.jit.save(model, "out/my-model", input_spec=[InputSpec([None, 4], "float32", "x")])

With ``tokenizer=`` and ``labels=`` it writes a servable text classifier (text in, label out); with
``labels=`` alone an image/tensor classifier; otherwise a generic package whose signature is the
graph's, with any number of named inputs and outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from torch import nn

from oar._core.errors import OarError
from oar.export.module_package import export_module
from oar.export.onnx import InputSpec
from oar.export.parity import DEFAULT_TOLERANCE
from oar.export.text_package import TEXT_INPUT, save_text_classifier
from oar.package import ModelPackage

__all__ = ["InputSpec", "save"]


def save(
    model: nn.Module,
    path: str | Path,
    input_spec: list[InputSpec] | None = None,
    *,
    name: str | None = None,
    tokenizer: Tokenizer | None = None,
    labels: list[str] | None = None,
    parity_batches: Iterable[Any] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    output_names: list[str] | None = None,
    **lineage: Any,
) -> ModelPackage:
    """Export ``model`` to a parity-checked package directory at ``path``.

    ``input_spec`` names every input, in ``forward``'s order: ``[InputSpec([None, None], "int64",
    "input_ids"), InputSpec([None, None], "int64", "attention_mask", value_range=(0, 1))]``.
    ``parity_batches`` are the user's own sample inputs (a tensor, a tuple in input order, or a dict by
    name, per batch): checked in addition to the stated random and edge-value sample
    (``oar.export.parity_inputs``). ``labels=`` without a tokenizer makes an image (tensor) classifier.
    """
    name = name or Path(path).name
    if tokenizer is not None:
        if not labels or parity_batches is None:
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
    if not input_spec:
        raise OarError("input_spec must list the model's inputs, e.g. [InputSpec([None, 16], 'float32', 'x')]")
    return export_module(
        model,
        input_spec,
        path,
        name=name,
        labels=labels,
        output_names=output_names,
        sample_inputs=parity_batches,
        tolerance=tolerance,
    )
