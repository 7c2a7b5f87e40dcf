"""Any ``nn.Module`` -> a parity-checked package: one input or several, one output or several.

``export_module(model, input_spec, name=...)`` is what ``oar.jit.save`` (without a tokenizer) and
``oar export --model-class`` run. The package is

- ``image-classification`` when ``labels`` are given (one input, ``[batch, classes]`` output): served
  as ``label``/``score``/``probabilities``, softmax applied unless the model already returns probabilities;
- ``generic`` otherwise: the graph's own tensors in and out, datatypes and shapes read from the graph.

Parity runs on the stated sample of ``parity_inputs.py`` (random, edge values, the user's own
batches); every output must be within ``tolerance`` (NaN only where the model gives NaN too).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from oar import __version__
from oar._core.errors import OarError, ParityError
from oar.export.custom_ops import package_op_libraries
from oar.export.graph_signature import graph_signature
from oar.export.onnx import InputSpec, export_onnx, onnx_opset
from oar.export.parity import DEFAULT_TOLERANCE
from oar.export.parity_inputs import Batch, parity_batches
from oar.export.source import save_source
from oar.package import Lineage, Manifest, ModelPackage, Parity, RuntimeSpec, TensorSpec
from oar.package.package import staged_package
from oar.runtime.session import create_session

_PROBABILITY_SLACK = 1e-4


def export_module(
    model: nn.Module,
    input_spec: Sequence[InputSpec],
    path: str | Path | None = None,
    *,
    name: str,
    labels: list[str] | None = None,
    output_names: list[str] | None = None,
    sample_inputs: Iterable | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    metrics: dict[str, float] | None = None,
    dataset: dict[str, Any] | None = None,
    run_id: str | None = None,
    register: bool = False,
    hub: Any = None,
) -> Any:
    """Export, check and write the package at ``path``; with ``register=True`` register it and return the version.

    >>> export_module(SmallCNN(1, 10), [InputSpec([None, 1, 8, 8], "float32", "image")], name="digits-cnn",
    ...               labels=[str(i) for i in range(10)], register=True)
    """
    specs = list(input_spec)
    _check_specs(specs, labels)
    if register:
        from oar.hub import Hub

        hub = hub or Hub()
        with tempfile.TemporaryDirectory(dir=hub.artifacts.root / "tmp") as tmp:
            package = export_module(
                model, specs, Path(tmp) / "package", name=name, labels=labels, output_names=output_names,
                sample_inputs=sample_inputs, tolerance=tolerance, metrics=metrics, dataset=dataset, run_id=run_id,
            )  # fmt: skip
            return hub.register_model(package.path)
    if path is None:
        raise OarError("export_module needs a path for the package, or register=True")
    model = model.eval()
    batches, described = parity_batches(specs, model, sample_inputs)
    with torch.no_grad():
        example = _outputs(model, batches[0])
    names = output_names or (["logits"] if labels else _default_output_names(len(example)))
    if len(names) != len(example):
        raise OarError(f"the model returns {len(example)} outputs but output_names lists {len(names)}")
    if labels and (len(example) != 1 or example[0].ndim != 2 or example[0].shape[1] != len(labels)):
        shapes = ", ".join(str(list(t.shape)) for t in example)
        raise OarError(f"{len(labels)} labels need one [batch, {len(labels)}] output; the model returns {shapes}")
    target = Path(path)
    with staged_package(target) as staging:
        onnx_path, exporter = export_onnx(model, staging / "model.onnx", specs, names)
        libraries = package_op_libraries(onnx_path, staging)
        op_files = [staging / lib.file for lib in libraries]
        parity = check_tensor_parity(model, onnx_path, batches, tolerance, described, op_files)
        if not parity.passed:
            raise ParityError(
                f"exported graph disagrees with PyTorch: max abs diff {parity.max_abs_diff:.2e} (tolerance "
                f"{tolerance:.0e}), argmax agreement {parity.argmax_agreement:.4f} on {described}; not saved"
            )
        graph_in, graph_out = graph_signature(onnx_path)
        graph_in = _with_spec_dims(graph_in, specs)
        save_source(model, staging)
        manifest = Manifest(
            name=name,
            task="image-classification" if labels else "generic",
            labels=list(labels or []),
            inputs=graph_in,
            outputs=_classifier_outputs(graph_out, labels) if labels else graph_out,
            runtime=RuntimeSpec(
                tokenizer_file=None,
                exporter=exporter,
                opset=onnx_opset(onnx_path),
                graph_inputs=graph_in,
                graph_outputs=graph_out,
                output_activation=_activation(model, batches) if labels else "softmax",
                custom_ops=libraries,
            ),
            metrics=dict(metrics or {}),
            parity=parity,
            lineage=Lineage(dataset=dataset, run_id=run_id, oar_version=__version__),
        )
        ModelPackage.write(staging, manifest)
    return ModelPackage.open(target)


def _check_specs(specs: list[InputSpec], labels: list[str] | None) -> None:
    if not specs:
        raise OarError("input_spec must list at least one InputSpec")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise OarError(f"input_spec names must be unique; got {', '.join(names)}")
    if labels is not None and (len(specs) != 1 or not labels):
        raise OarError("a classifier package (labels=) takes exactly one input and at least one label")


def _default_output_names(count: int) -> list[str]:
    return ["output"] if count == 1 else [f"output{i}" for i in range(count)]


def _outputs(model: nn.Module, batch: Batch) -> list[torch.Tensor]:
    """The model's outputs as a list, whatever it returns (a tensor, a tuple/list, a dict)."""
    result = model(*batch.values())
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, dict):
        return list(result.values())
    if isinstance(result, list | tuple) and all(isinstance(r, torch.Tensor) for r in result):
        return list(result)
    raise OarError(f"the model returns {type(result).__name__}; export needs tensors (one, a tuple or a dict)")


@torch.no_grad()
def check_tensor_parity(
    model: nn.Module,
    onnx_path: Path,
    batches: list[Batch],
    tolerance: float,
    described: str,
    custom_op_libraries: Sequence[Path] = (),
) -> Parity:
    """Every output of the graph against the module's on every batch; argmax agreement on 2-D float outputs."""
    session = create_session(onnx_path, custom_op_libraries=custom_op_libraries)
    worst, agree, rows, samples = 0.0, 0, 0, 0
    for batch in batches:
        expected = [t.detach().numpy() for t in _outputs(model, batch)]
        actual = session.run(None, {k: v.numpy() for k, v in batch.items()})
        for want, got in zip(expected, actual, strict=True):
            worst = max(worst, _max_abs_diff(want, got))
            if want.ndim == 2 and want.dtype.kind == "f" and want.shape == got.shape:
                agree += int((np.nan_to_num(want).argmax(1) == np.nan_to_num(got).argmax(1)).sum())
                rows += len(want)
        samples += len(next(iter(batch.values())))
    agreement = agree / rows if rows else 1.0
    return Parity(
        reference="torch",
        samples=samples,
        max_abs_diff=worst,
        argmax_agreement=agreement,
        tolerance=tolerance,
        passed=samples > 0 and worst <= tolerance and agreement == 1.0,
        inputs=described,
    )


def _max_abs_diff(want: np.ndarray, got: np.ndarray) -> float:
    """Largest |difference|; shape or NaN-placement mismatch counts as infinitely different."""
    if want.shape != got.shape:
        return float("inf")
    want, got = want.astype(np.float64), got.astype(np.float64)
    nan_want, nan_got = np.isnan(want), np.isnan(got)
    if (nan_want != nan_got).any():
        return float("inf")
    finite = ~nan_want
    if not finite.any():
        return 0.0
    a, b = want[finite], got[finite]
    same_inf = np.isinf(a) & (a == b)
    return float(np.abs(np.where(same_inf, 0.0, a - b)).max())


def _with_spec_dims(graph_in: list[TensorSpec], specs: list[InputSpec]) -> list[TensorSpec]:
    """The user's declared dynamic dims stay dynamic even where the exporter specialised a size."""
    by_name = {s.name: s for s in specs}
    out = []
    for tensor in graph_in:
        spec = by_name.get(tensor.name)
        if spec is None or len(spec.shape) != len(tensor.shape):
            raise OarError(f"the exported graph's input '{tensor.name}' does not match input_spec")
        out.append(tensor.model_copy(update={"shape": [-1 if d is None else d for d in spec.shape]}))
    return out


def _classifier_outputs(graph_out: list[TensorSpec], labels: list[str]) -> list[TensorSpec]:
    if len(graph_out) != 1 or len(graph_out[0].shape) != 2 or graph_out[0].shape[1] not in (-1, len(labels)):
        raise OarError(f"a classifier must return one [batch, {len(labels)}] tensor (one score per label)")
    return [
        TensorSpec(name="label", datatype="BYTES", shape=[-1]),
        TensorSpec(name="score", datatype="FP32", shape=[-1]),
        TensorSpec(name="probabilities", datatype="FP32", shape=[-1, len(labels)]),
    ]


@torch.no_grad()
def _activation(model: nn.Module, batches: list[Batch]) -> str:
    """``none`` when every output row is already a probability distribution, else ``softmax``."""
    for batch in batches:
        out = _outputs(model, batch)[0].float()
        if (out < -_PROBABILITY_SLACK).any() or ((out.sum(1) - 1).abs() > _PROBABILITY_SLACK).any():
            return "softmax"
    return "none"
