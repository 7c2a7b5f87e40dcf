"""``oar ops``: list, build and check custom operators (``oar.ops``)."""

from __future__ import annotations

import importlib

import typer

from oar._core.errors import OarError

ops_app = typer.Typer(help="Custom operators: build their kernels and check them.", no_args_is_help=True)

_MODULE_HELP = "import this module first (where your op is defined), e.g. myproj.ops"


def _load(module: str | None) -> None:
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise OarError(f"cannot import {module}: {exc}") from None


@ops_app.command("check")
def check(
    name: str = typer.Argument(..., help="the op, namespace::name (e.g. oar_dlrm::bag_interact)"),
    module: str = typer.Option(None, "--module", help=_MODULE_HELP),
    timing: bool = typer.Option(True, "--timing/--no-timing", help="time a compiled step against eager"),
) -> None:
    """opcheck, forward == reference, gradcheck (float64), no graph break, compiled vs eager."""
    _load(module)
    from oar.ops import check as run_checks

    report = run_checks(name, timing=timing)
    for line in report.lines():
        typer.echo(line)
    if not report.passed:
        raise typer.Exit(1)


@ops_app.command("build")
def build(
    name: str = typer.Argument(..., help="the op, namespace::name"),
    module: str = typer.Option(None, "--module", help=_MODULE_HELP),
) -> None:
    """Compile the op's C++ kernel and its ONNX Runtime library now (into the build cache)."""
    _load(module)
    from oar.ops import get_op

    op = get_op(name)
    op.build()
    typer.echo(f"{name}: PyTorch kernel built")
    if op.onnx is not None:
        typer.echo(f"{name}: ONNX Runtime library {op.ort_library()}")


@ops_app.command("list")
def list_ops(module: str = typer.Option(None, "--module", help=_MODULE_HELP)) -> None:
    """The ops defined (oar's own and those of --module): kernels per device and ONNX domain."""
    _load(module)
    from oar.ops import defined_ops, get_op
    from oar.ops._definition import BUILTIN_OPS

    for name in BUILTIN_OPS:
        get_op(name)
    for op in defined_ops():
        kernels = ", ".join(f"{d}={k}" for d, k in op.kernels.items()) or "reference only"
        onnx = f"{op.onnx.domain}::{op.onnx.op_type}" if op.onnx else "-"
        typer.echo(f"{op.name}  kernels: {kernels}  onnx: {onnx}")
