"""Generic runtime: named tensors straight into the ONNX graph and out again (``task == "generic"``).

Packages written by ``oar.jit.save`` without a tokenizer carry the graph's own
signature; requests are checked against it (names, datatypes, fixed dimensions)
so a wrong tensor is a 400 with a message, never an ONNX Runtime stack trace.
"""

from __future__ import annotations

import numpy as np

from oar._core.errors import InvalidInputError
from oar.package import ModelPackage, TensorSpec
from oar.protocol.datatypes import numpy_dtype
from oar.runtime.session import create_session


class GenericOnnxRuntime:
    """``GenericOnnxRuntime(ModelPackage.open(path)).infer({"x": array})`` -> ``{"output": array}``."""

    def __init__(self, package: ModelPackage, intra_op_threads: int = 0) -> None:
        manifest = package.manifest
        self.package = package
        self.inputs: list[TensorSpec] = list(manifest.inputs)
        self.outputs: list[TensorSpec] = list(manifest.outputs)
        self.session = create_session(package.file(manifest.runtime.model_file), intra_op_threads)
        self._output_names = [o.name for o in self.outputs]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        expected = {spec.name for spec in self.inputs}
        if set(inputs) != expected:
            raise InvalidInputError(
                f"expected inputs {', '.join(sorted(expected))}, got: {', '.join(sorted(inputs)) or 'none'}"
            )
        feeds = {spec.name: _checked(spec, inputs[spec.name]) for spec in self.inputs}
        results = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, results, strict=True))


def _checked(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    if array.dtype != numpy_dtype(spec.datatype) or array.dtype == object:
        raise InvalidInputError(f"input '{spec.name}' must be {spec.datatype}")
    shape = list(array.shape)
    if len(shape) != len(spec.shape) or any(want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)):
        raise InvalidInputError(f"input '{spec.name}' must have shape {spec.shape} (-1: any), got {shape}")
    if 0 in shape:
        raise InvalidInputError(f"input '{spec.name}' is empty (shape {shape}); send at least one element")
    return array
