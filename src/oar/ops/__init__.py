"""Custom operators defined once and carried through eager, ``torch.compile``, ONNX export and serving.

>>> import oar.ops
>>> @oar.ops.custom_op("myproj::scale2")
... def scale2(x: torch.Tensor) -> torch.Tensor:
...     return x * 2
>>> scale2.register_samples(lambda dtype, gen: [(torch.randn(3, 4, dtype=dtype, generator=gen),)])
>>> print("\n".join(oar.ops.check(scale2).lines()))     # or: oar ops check myproj::scale2 --module ...

See docs/custom_ops.md for the whole path: reference -> C++ kernel -> checks -> ONNX -> served.
"""

from __future__ import annotations

from oar.ops._build import CppSource, cache_dir, find_compiler
from oar.ops._check import CheckReport, check
from oar.ops._definition import CustomOp, custom_op, defined_ops, get_op, op_for_domain

__all__ = [
    "CheckReport",
    "CppSource",
    "CustomOp",
    "cache_dir",
    "check",
    "custom_op",
    "defined_ops",
    "find_compiler",
    "get_op",
    "op_for_domain",
]
