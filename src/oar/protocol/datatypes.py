"""Tensor datatypes of the Open Inference Protocol and their NumPy equivalents.

BF16 has no NumPy dtype: it is held as float32 in memory (exact, since every
bfloat16 is a float32) and converted only on the wire, as Triton's client does.
"""

from __future__ import annotations

import numpy as np

from oar._core.errors import InvalidInputError

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "BF16": np.dtype(np.float32),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
# Bytes per element on the wire (BYTES is variable: 4-byte length + content per element).
WIRE_SIZES: dict[str, int] = {name: (2 if name == "BF16" else dtype.itemsize) for name, dtype in DATATYPES.items()}
_BY_DTYPE = {dtype: name for name, dtype in DATATYPES.items() if name != "BF16"}


def numpy_dtype(datatype: str) -> np.dtype:
    try:
        return DATATYPES[datatype]
    except KeyError:
        raise InvalidInputError(f"unknown datatype '{datatype}'; use one of {', '.join(DATATYPES)}") from None


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in "OSU":
        return "BYTES"
    try:
        return _BY_DTYPE[array.dtype]
    except KeyError:
        raise InvalidInputError(f"no protocol datatype for numpy dtype {array.dtype}") from None
