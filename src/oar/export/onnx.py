"""``torch.nn.Module`` -> one ``model.onnx`` file with dynamic axes.

The dynamo exporter is tried first (one file: ``external_data=False``); if it
fails, the TorchScript exporter is used and the reason is reported, because a
silent fallback hides a model that will break on the next torch release.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxscript.optimizer
import torch
from torch import nn

from oar._core.errors import OarError
from oar.export.traps import rewrite_export_traps

log = logging.getLogger(__name__)
# The exporter warns once per missing torchvision operator; oar never exports those.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)

_DTYPES = {"int64": torch.int64, "int32": torch.int32, "float32": torch.float32, "float16": torch.float16}
_PROTOCOL_DATATYPES = {"int64": "INT64", "int32": "INT32", "float32": "FP32", "float16": "FP16"}
OPSET = 18
_FOLD_LIMIT = 1 << 22  # elements: weights up to 16 MB (fp32) get folded at export time


@dataclass(frozen=True)
class InputSpec:
    """Shape (``None`` = dynamic), dtype and name of one model input, as in ``paddle.static.InputSpec``."""

    shape: list[int | None]
    dtype: str = "float32"
    name: str = "x"
    # The values the model accepts, for parity samples: (min id, max id) of an embedding, (0, 1) of a mask.
    # None: ints inferred from the model's smallest nn.Embedding (else 0..1), floats unbounded (normal).
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise OarError(f"unsupported input dtype '{self.dtype}'; use one of {', '.join(_DTYPES)}")
        if self.value_range is not None and self.value_range[0] > self.value_range[1]:
            raise OarError(f"input '{self.name}': value_range {self.value_range} has min > max")

    @property
    def datatype(self) -> str:
        """The Open Inference Protocol name of the dtype."""
        return _PROTOCOL_DATATYPES[self.dtype]

    def example(self) -> torch.Tensor:
        """A small tensor to trace with: dynamic dims get distinct sizes > 1 so none is specialised."""
        sizes = [(2 + i) * 2 + 1 if dim is None else dim for i, dim in enumerate(self.shape)]
        if self.dtype.startswith("int"):
            return torch.randint(1, 3, sizes, dtype=_DTYPES[self.dtype])
        return torch.randn(sizes, dtype=_DTYPES[self.dtype])


def export_onnx(model: nn.Module, path: Path, input_spec: list[InputSpec], output_names: list[str]) -> tuple[Path, str]:
    """Write ``path``; return it and the exporter used (``dynamo`` or ``torchscript``)."""
    model = rewrite_export_traps(model.eval())
    examples = tuple(spec.example() for spec in input_spec)
    names = [spec.name for spec in input_spec]
    try:
        _export_dynamo(model, path, examples, input_spec, output_names)
        return path, "dynamo"
    except Exception as exc:  # the exporter raises many types; all mean "try the other one"
        refused = _oar_error_in(exc)
        if refused is not None:
            raise refused from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("dynamo ONNX export failed (%s); falling back to the TorchScript exporter", reason)
    dynamic_axes = {
        spec.name: {i: f"{spec.name}_dim{i}" for i, d in enumerate(spec.shape) if d is None} for spec in input_spec
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                examples,
                str(path),
                input_names=names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=17,
                dynamo=False,
            )
        except torch.onnx.errors.UnsupportedOperatorError as exc:
            raise _unsupported_operator(exc) from None
    return path, "torchscript"


def _unsupported_operator(exc: Exception) -> OarError:
    """A custom (``torch.library``) or unsupported op: name it and say how to get past it."""
    found = re.search(r"\b([A-Za-z_]\w*::\w+(?:\.\w+)*)", str(exc))
    op = found.group(1) if found else "an operator"
    return OarError(
        f"cannot export to ONNX: the model calls {op}, which has no ONNX translation (a custom "
        "torch.library op, or one the exporters do not support); write it with standard torch operations, "
        "or register an ONNX translation for it (torch.onnx.export's custom_translation_table), and export again"
    )


def _oar_error_in(exc: BaseException | None) -> OarError | None:
    """An ``OarError`` raised by our own rewritten modules is a refusal, not an exporter failure."""
    while exc is not None:
        if isinstance(exc, OarError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _custom_op_translations() -> dict:
    """Every ``oar.ops`` op with an ONNX node: exported as that one custom-domain node."""
    from oar.ops import defined_ops

    return {op.overload: op.onnx_translation() for op in defined_ops() if op.onnx is not None}


def onnx_opset(path: Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _export_dynamo(
    model: nn.Module, path: Path, examples: tuple[torch.Tensor, ...], specs: list[InputSpec], outputs: list[str]
) -> None:
    dynamic_shapes = tuple({i: torch.export.Dim.AUTO for i, d in enumerate(spec.shape) if d is None} for spec in specs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            examples,
            input_names=[spec.name for spec in specs],
            output_names=outputs,
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
            custom_translation_table=_custom_op_translations(),
        )
    if program is None:
        raise RuntimeError("the dynamo exporter returned no program")
    # The exporter's own pass folds constants of at most 8192 elements, so a weight reshaped in
    # ``forward`` (the TextCNN's kernels) would stay a Reshape at run time and hide the weight from
    # the quantizers, which only quantize initializers. Fold larger ones too.
    onnxscript.optimizer.optimize(program.model, input_size_limit=_FOLD_LIMIT, output_size_limit=_FOLD_LIMIT)
    program.save(str(path), external_data=False)
