"""The slots of ONNX Runtime's C API table that oar's header declares are the functions it says.

Each slot named in oar_ort_abi.h is called through ctypes against the installed libonnxruntime:
a status made by CreateStatus reads back through GetErrorCode/GetErrorMessage, and a tensor made
with the default allocator reports its rank, dimensions, element type and data through the slots
the kernels use. A wrong position fails here instead of in a served model.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import onnxruntime
import pytest

import oar.ops

P = ctypes.c_void_p


def _slots() -> dict[str, int]:
    header = (Path(oar.ops.__file__).parent / "include" / "oar_ort_abi.h").read_text()
    return {name: int(index) for name, index in re.findall(r"\b(k[A-Z]\w+) = (\d+),", header)}


@pytest.fixture(scope="module")
def api() -> ctypes.Array:
    capi = Path(onnxruntime.__file__).parent / "capi"
    library = ctypes.CDLL(str(next(capi.glob("libonnxruntime.so*"))))
    library.OrtGetApiBase.restype = P
    base = (P * 2).from_address(library.OrtGetApiBase())
    table = ctypes.CFUNCTYPE(P, ctypes.c_uint32)(base[0])(1)
    return (P * 128).from_address(table)


def _fn(api: ctypes.Array, slot: str, restype, *argtypes):  # type: ignore[no-untyped-def]
    return ctypes.CFUNCTYPE(restype, *argtypes)(api[_slots()[slot]])


def test_the_status_slots_round_trip_a_message(api):
    status = _fn(api, "kCreateStatus", P, ctypes.c_int, ctypes.c_char_p)(2, b"slot check")
    assert _fn(api, "kGetErrorMessage", ctypes.c_char_p, P)(status) == b"slot check"
    _fn(api, "kReleaseStatus", None, P)(status)


def test_the_tensor_slots_describe_a_tensor(api):
    allocator, value, info = P(), P(), P()
    assert ctypes.CFUNCTYPE(P, ctypes.POINTER(P))(api[78])(ctypes.byref(allocator)) is None  # default allocator
    shape = (ctypes.c_int64 * 3)(2, 3, 4)
    create = ctypes.CFUNCTYPE(P, P, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t, ctypes.c_int, ctypes.POINTER(P))
    assert create(api[48])(allocator, shape, 3, 7, ctypes.byref(value)) is None  # an int64 tensor
    assert _fn(api, "kGetTensorTypeAndShape", P, P, ctypes.POINTER(P))(value, ctypes.byref(info)) is None
    rank, element, data = ctypes.c_size_t(), ctypes.c_int(), P()
    dims = (ctypes.c_int64 * 3)()
    assert _fn(api, "kGetDimensionsCount", P, P, ctypes.POINTER(ctypes.c_size_t))(info, ctypes.byref(rank)) is None
    assert _fn(api, "kGetDimensions", P, P, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t)(info, dims, 3) is None
    assert _fn(api, "kGetTensorElementType", P, P, ctypes.POINTER(ctypes.c_int))(info, ctypes.byref(element)) is None
    assert _fn(api, "kGetTensorMutableData", P, P, ctypes.POINTER(P))(value, ctypes.byref(data)) is None
    assert (rank.value, list(dims), element.value, bool(data.value)) == (3, [2, 3, 4], 7, True)
    _fn(api, "kReleaseTensorTypeAndShapeInfo", None, P)(info)
    ctypes.CFUNCTYPE(None, P)(api[96])(value)  # ReleaseValue
