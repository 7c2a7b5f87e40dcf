"""Generic runtime: named tensors straight into the ONNX graph and out again (``task == "generic"``).

Any tensor-in/tensor-out graph: one input or several (ids + mask, image + metadata). Requests are
checked against the package's signature (names, datatypes, fixed dimensions) before the graph runs, so a
wrong tensor is a 400 with a message, never an ONNX Runtime stack trace; what ONNX Runtime still
refuses as an argument (a dimension the graph constrains that the manifest left dynamic) is a 400 too.
"""

from __future__ import annotations

import numpy as np
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

from oar._core.errors import InvalidInputError
from oar.package import ModelPackage, TensorSpec
from oar.protocol.datatypes import numpy_dtype
from oar.runtime.custom_ops import op_libraries
from oar.runtime.session import create_session


class GenericOnnxRuntime:
    """``GenericOnnxRuntime(ModelPackage.open(path)).infer({"x": array})`` -> ``{"output": array}``."""

    def __init__(self, package: ModelPackage, intra_op_threads: int = 0) -> None:
        manifest = package.manifest
        self.package = package
        self.inputs: list[TensorSpec] = list(manifest.runtime.graph_inputs)
        self.outputs: list[TensorSpec] = list(manifest.runtime.graph_outputs)
        self.session = create_session(
            package.file(manifest.runtime.model_file), intra_op_threads, custom_op_libraries=op_libraries(package)
        )
        self._output_names = [o.name for o in self.outputs]
        self._output_dtypes = [numpy_dtype(o.datatype) for o in self.outputs]
        self._expected = {spec.name for spec in self.inputs}

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if inputs.keys() != self._expected:
            raise InvalidInputError(
                f"expected inputs {', '.join(sorted(self._expected))}, got: {', '.join(sorted(inputs)) or 'none'}"
            )
        feeds = {spec.name: checked_tensor(spec, inputs[spec.name]) for spec in self.inputs}
        results = run_checked(self.session, self._output_names, feeds)
        return {
            name: result.astype(dtype, copy=False)
            for name, dtype, result in zip(self._output_names, self._output_dtypes, results, strict=True)
        }


def run_checked(session, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """``session.run``, with the arguments ONNX Runtime refuses reported as the client's error (400)."""
    try:
        return session.run(output_names, feeds)
    except InvalidArgument as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"the model refused the input: {message[:300]}") from None


def checked_tensor(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """``array`` if it has ``spec``'s datatype and shape (-1: any size), else a clear ``InvalidInputError``."""
    if array.dtype == object or array.dtype != numpy_dtype(spec.datatype):
        raise InvalidInputError(f"input '{spec.name}' must be {spec.datatype}, got {array.dtype}")
    shape = list(array.shape)
    if len(shape) != len(spec.shape) or any(want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)):
        raise InvalidInputError(f"input '{spec.name}' must have shape {spec.shape} (-1: any), got {shape}")
    if 0 in shape:
        raise InvalidInputError(f"input '{spec.name}' is empty (shape {shape}); send at least one element")
    return array
