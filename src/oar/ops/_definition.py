"""``CustomOp``: one operator defined once over ``torch.library``, carried from eager to served.

The reference implementation (plain torch ops) is the ground truth and the fallback: it is the
op's default kernel, so a device with no kernel of its own still runs, after a one-time warning.
Kernels for a device replace it there (``register_kernel``); the fake (meta) implementation and
the autograd formula are torch.library's own registrations. Nothing here is a second registry for
dispatch: oar only keeps, per op name, what torch.library has no place for (the reference, sample
inputs for the checks, the ONNX domain and the ONNX Runtime kernel source).
"""

from __future__ import annotations

import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from oar._core.errors import OarError
from oar.ops._build import CppSource, build_ort_library, load_torch_kernel

log = logging.getLogger("oar.ops")
_REGISTRY: dict[str, CustomOp] = {}
Samples = Callable[[torch.dtype, torch.Generator], Sequence[tuple[Any, ...]]]


@dataclass(frozen=True)
class OnnxSpec:
    """How the op appears in an ONNX graph and which C++ runs it in ONNX Runtime."""

    domain: str
    op_type: str
    ort_source: CppSource


class CustomOp:
    """An operator: schema, reference, kernels per device, fake, autograd, ONNX node and ORT kernel.

    >>> op = custom_op("myproj::scale2", schema="(Tensor x) -> Tensor")(lambda x: x * 2)
    """

    def __init__(self, name: str, reference: Callable[..., Any], schema: str | None = None) -> None:
        if name.count("::") != 1:
            raise OarError(f"custom op name '{name}' must be 'namespace::name'")
        self.name = name
        self.reference = reference
        self.schema = _checked_schema(name, reference, schema)
        self.kernels: dict[str, str] = {}  # device -> "cpp" | "triton" | "python"
        self.onnx: OnnxSpec | None = None
        self.samples: Samples | None = None
        self._fallback_warned: set[str] = set()
        self._cpp: tuple[CppSource, str] | None = None
        self._cpp_module: ModuleType | None = None
        self._lock = threading.Lock()
        self._def = torch.library.custom_op(name, self._reference_kernel, mutates_args=(), schema=self.schema)
        _REGISTRY[name] = self

    def __call__(self, *args: Any) -> Any:
        return self._def(*args)

    @property
    def overload(self) -> torch._ops.OpOverload:
        """``torch.ops.<namespace>.<name>.default``: what graphs, exporters and opcheck see."""
        namespace, opname = self.name.split("::")
        return getattr(getattr(torch.ops, namespace), opname).default

    # -- kernels -----------------------------------------------------------------------------
    def register_kernel(
        self,
        device: str,
        fn: Callable[..., Any] | None = None,
        *,
        cpp_source: CppSource | None = None,
        function: str | None = None,
        triton: Callable[..., Any] | None = None,
    ) -> None:
        """A kernel for ``device``: a C++ function (``cpp_source`` + ``function``), a Triton launcher or a callable."""
        given = [x for x in (fn, cpp_source, triton) if x is not None]
        if len(given) != 1:
            raise OarError(f"{self.name}: register_kernel takes one of fn=, cpp_source= or triton=")
        if cpp_source is not None:
            if function is None:
                raise OarError(f"{self.name}: a C++ kernel needs function= (the C++ function to call)")
            self._cpp = (cpp_source, function)
            kernel, kind = self._cpp_kernel, "cpp"
        elif triton is not None:
            kernel, kind = triton, "triton"
        else:
            kernel, kind = fn, "python"
        self._def.register_kernel(device)(kernel)
        self.kernels[device] = kind

    def build(self) -> None:
        """Compile the C++ kernel now (it is otherwise compiled on first use)."""
        self._cpp_function()

    def register_fake(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """The output's shape and dtype from the inputs': what ``torch.compile`` and ``torch.export`` trace with."""
        self._def.register_fake(fn)
        return fn

    def register_autograd(self, backward: Callable[..., Any], setup_context: Callable[..., Any]) -> None:
        """The backward formula (written with torch ops, or other custom ops)."""
        self._def.register_autograd(backward, setup_context=setup_context)

    def register_samples(self, fn: Samples) -> Samples:
        """``fn(dtype, generator)`` -> argument tuples of random shapes: the inputs ``oar ops check`` runs."""
        self.samples = fn
        return fn

    def register_onnx(self, domain: str, op_type: str, ort_source: CppSource) -> None:
        """Export the op as one ``domain::op_type`` node; ``ort_source`` is its ONNX Runtime kernel (C++)."""
        if domain in ("", "ai.onnx", "ai.onnx.ml", "com.microsoft"):
            raise OarError(f"{self.name}: '{domain}' is a standard ONNX domain; use your own (e.g. 'myproj')")
        self.onnx = OnnxSpec(domain, op_type, ort_source)

    def ort_library(self) -> Path:
        """The ONNX Runtime custom-op library for this op, built for the installed onnxruntime."""
        if self.onnx is None:
            raise OarError(f"{self.name} has no ONNX kernel; call register_onnx(domain, op_type, ort_source)")
        import onnxruntime

        name = f"{self.onnx.domain}.{self.onnx.op_type}"
        return build_ort_library(name, self.onnx.ort_source, onnxruntime.__version__)

    def onnx_translation(self) -> Callable[..., Any]:
        """The exporter's translation: one node of the op's own domain, inputs in schema order."""
        if self.onnx is None:
            raise OarError(f"{self.name} has no ONNX translation; call register_onnx(...)")
        import onnxscript

        opset = onnxscript.values.Opset(self.onnx.domain, 1)
        op_type = self.onnx.op_type
        names = [arg.name for arg in self.overload._schema.arguments]

        node = onnxscript.values.Op(opset, op_type, op_schema=_onnx_schema(self.onnx, names))

        def translate(*inputs: Any) -> Any:
            return node(*inputs)

        translate.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
        )
        translate.__name__ = f"{self.onnx.domain}_{op_type}".replace(".", "_")
        return translate

    # -- dispatch ----------------------------------------------------------------------------
    def _reference_kernel(self, *args: Any) -> Any:
        device = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        if device not in self._fallback_warned:
            self._fallback_warned.add(device)
            warnings.warn(
                f"{self.name} has no {device} kernel: running its reference implementation (correct, slower)",
                RuntimeWarning,
                stacklevel=3,
            )
        return self.reference(*args)

    def _cpp_kernel(self, *args: Any) -> Any:
        return self._cpp_function()(*args)

    def _cpp_function(self) -> Callable[..., Any]:
        if self._cpp is None:
            raise OarError(f"{self.name} has no C++ kernel")
        source, function = self._cpp
        with self._lock:
            if self._cpp_module is None:
                self._cpp_module = load_torch_kernel(self.name, source, [function])
        return getattr(self._cpp_module, function)


def custom_op(name: str, schema: str | None = None) -> Callable[[Callable[..., Any]], CustomOp]:
    """Define ``name`` from its reference implementation (plain torch ops): the decorator form.

    >>> @custom_op("myproj::fused_bag_dot", schema="(Tensor ids, Tensor weight) -> Tensor")
    ... def fused_bag_dot(ids, weight): ...
    """

    def define(reference: Callable[..., Any]) -> CustomOp:
        return CustomOp(name, reference, schema)

    return define


def get_op(name: str) -> CustomOp:
    """The op defined as ``name`` in this process (its module must have been imported)."""
    if name not in _REGISTRY and name in BUILTIN_OPS:
        __import__(BUILTIN_OPS[name])
    if name not in _REGISTRY:
        known = ", ".join(sorted({*_REGISTRY, *BUILTIN_OPS})) or "none"
        raise OarError(f"no custom op named '{name}' is defined (known: {known}); import the module that defines it")
    return _REGISTRY[name]


def defined_ops() -> list[CustomOp]:
    return list(_REGISTRY.values())


def op_for_domain(domain: str) -> CustomOp | None:
    """The op exported under ONNX ``domain`` (built-in ops' modules are imported to find it)."""
    for module in BUILTIN_OPS.values():
        __import__(module)
    return next((op for op in _REGISTRY.values() if op.onnx and op.onnx.domain == domain), None)


def _onnx_schema(spec: OnnxSpec, names: list[str]) -> Any:
    """An ONNX schema for the node (any tensor type per input, one output): what the exporter builds it from."""
    import onnx

    types = [f"tensor({t})" for t in ("float", "double", "float16", "bfloat16", "int64", "int32", "bool")]
    param = onnx.defs.OpSchema.FormalParameter
    constraints = [(f"T{i}", types, "") for i in range(len(names) + 1)]
    return onnx.defs.OpSchema(
        spec.op_type,
        spec.domain,
        1,
        inputs=[param(name, f"T{i}") for i, name in enumerate(names)],
        outputs=[param("output", f"T{len(names)}")],
        type_constraints=constraints,
    )


BUILTIN_OPS = {"oar_dlrm::bag_interact": "oar.ops.dlrm"}


def _checked_schema(name: str, reference: Callable[..., Any], schema: str | None) -> str:
    """The schema to register; a given one must name and type the reference's arguments the same way."""
    try:
        inferred = torch.library.infer_schema(reference, mutates_args=())
    except (ValueError, TypeError) as exc:
        if schema is None:
            raise OarError(f"{name}: cannot infer a schema from the reference ({exc}); pass schema=") from None
        inferred = None
    if schema is None:
        assert inferred is not None
        return inferred
    try:
        given = torch._C.parse_schema(f"{name}{schema}")
    except RuntimeError as exc:
        raise OarError(f"{name}: schema '{schema}' does not parse: {str(exc).splitlines()[0]}") from None
    params = [p for p in inspect.signature(reference).parameters.values()]
    given_names = [a.name for a in given.arguments]
    ref_names = [p.name for p in params]
    if given_names != ref_names:
        raise OarError(
            f"{name}: the schema's arguments ({', '.join(given_names)}) do not match the reference's "
            f"({', '.join(ref_names)})"
        )
    if inferred is not None:
        want = torch._C.parse_schema(f"{name}{inferred}")
        for got_arg, want_arg in zip(given.arguments, want.arguments, strict=True):
            if str(got_arg.type) != str(want_arg.type):
                raise OarError(
                    f"{name}: the schema types argument '{got_arg.name}' as {got_arg.type} but the reference "
                    f"annotates it as {want_arg.type}"
                )
        if [str(r.type) for r in given.returns] != [str(r.type) for r in want.returns]:
            raise OarError(
                f"{name}: the schema returns {', '.join(str(r.type) for r in given.returns)} but the reference "
                f"returns {', '.join(str(r.type) for r in want.returns)}"
            )
    return schema
