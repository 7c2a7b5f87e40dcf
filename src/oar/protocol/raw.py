"""Raw tensor bytes: the layout shared by gRPC ``raw_*_contents`` and the REST binary extension.

Row-major, little-endian; BYTES elements are each a 4-byte little-endian length
followed by the content; BF16 is the upper half of each float32. A buffer whose
size disagrees with its shape is a client error, reported before any model runs.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from oar._core.errors import InvalidInputError
from oar.protocol.datatypes import WIRE_SIZES, numpy_dtype

_LENGTH = struct.Struct("<I")


def to_raw(array: np.ndarray, datatype: str) -> bytes:
    """Serialise ``array`` as ``datatype`` on the wire."""
    if datatype == "BYTES":
        if array.size == 1:  # one text or label: the common response
            item = _as_bytes(array.item())
            return _LENGTH.pack(len(item)) + item
        return b"".join([_LENGTH.pack(len(item)) + item for item in map(_as_bytes, array.ravel().tolist())])
    if datatype == "BF16":
        words = np.ascontiguousarray(array, dtype="<f4").view("<u4") >> 16
        return words.astype("<u2").tobytes()
    wire = _LITTLE_ENDIAN.get(datatype) or _LITTLE_ENDIAN.setdefault(datatype, numpy_dtype(datatype).newbyteorder("<"))
    return array.astype(wire, copy=False).tobytes()  # tobytes() is C order whatever the array's layout


_LITTLE_ENDIAN: dict[str, np.dtype] = {}  # datatype -> its wire dtype (built once: this is on every response)


def from_raw(buffer: bytes | memoryview, datatype: str, shape: list[int], name: str) -> np.ndarray:
    """Parse ``buffer`` as a ``datatype`` tensor of ``shape``; raise ``InvalidInputError`` on any mismatch."""
    count = math.prod(shape)
    if datatype == "BYTES":
        array = _bytes_from_raw(bytes(buffer), count, name)
        return array if len(shape) == 1 else array.reshape(shape)
    dtype = numpy_dtype(datatype)  # raises on an unknown datatype
    size = WIRE_SIZES[datatype]
    if len(buffer) != count * size:
        raise InvalidInputError(
            f"input '{name}' has {len(buffer)} bytes of data but shape {shape} of {datatype} needs {count * size}"
        )
    if datatype == "BF16":
        words = np.frombuffer(buffer, dtype="<u2").astype(np.uint32) << 16
        return words.view(np.float32).reshape(shape)
    array = np.frombuffer(buffer, dtype=dtype.newbyteorder("<"))
    return array.astype(dtype, copy=False).reshape(shape)


def _bytes_from_raw(buffer: bytes, count: int, name: str) -> np.ndarray:
    if count == 1 and len(buffer) >= 4 and _LENGTH.unpack_from(buffer)[0] == len(buffer) - 4:
        array = np.empty(1, dtype=object)  # one element that fills the buffer: the common single-text request
        array[0] = buffer[4:]
        return array
    items: list[bytes] = []
    offset, end = 0, len(buffer)
    while offset < end:
        if offset + 4 > end:
            raise InvalidInputError(f"input '{name}' BYTES data ends inside an element's 4-byte length")
        (length,) = _LENGTH.unpack_from(buffer, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInputError(f"input '{name}' BYTES element {len(items)} claims {length} bytes past the end")
        items.append(buffer[offset : offset + length])
        offset += length
        if len(items) > count:
            break
    if len(items) != count:
        raise InvalidInputError(f"input '{name}' holds {len(items)} BYTES elements but its shape needs {count}")
    array = np.empty(count, dtype=object)
    array[:] = items
    return array


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("utf-8")
