"""The tensors an ONNX graph takes and returns, as manifest ``TensorSpec``s (OIP datatypes, -1 = dynamic).

Read from the exported file itself, so a package's signature is the graph's, whatever produced it
(dynamo, TorchScript, paddle2onnx): an int64 output is served as INT64, not relabelled FP32.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from oar._core.errors import OarError
from oar.package import TensorSpec

_DATATYPES = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.BFLOAT16: "BF16",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.BOOL: "BOOL",
}


def graph_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of the graph at ``path``; initializers listed as inputs are left out."""
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    inputs = [_spec(v) for v in graph.input if v.name not in initializers]
    return inputs, [_spec(v) for v in graph.output]


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    datatype = _DATATYPES.get(tensor.elem_type)
    if datatype is None:
        name = onnx.TensorProto.DataType.Name(tensor.elem_type)
        raise OarError(f"graph tensor '{value.name}' has element type {name}, which the protocol cannot carry")
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim]
    return TensorSpec(name=value.name, datatype=datatype, shape=shape)
