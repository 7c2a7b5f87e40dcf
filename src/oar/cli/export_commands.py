"""``oar export``, ``oar quantize``, ``oar pack`` and ``oar import paddle``: packages in and out."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oar._core.errors import InvalidInputError, OarError

console = Console()
import_app = typer.Typer(help="Import models trained with other frameworks.", no_args_is_help=True)


def export(
    source: str = typer.Argument(..., help="NAME, NAME:VERSION or a run id"),
    format: str = typer.Option("onnx", "--format", help="onnx | torch-export (.pt2)"),
    name: str = typer.Option(None, help="register under this name (default: the source's; -pt2 for .pt2)"),
) -> None:
    """Re-export a model from its source weights; parity-checked on validation data, then registered."""
    from oar.export.reexport import export_registered  # needs torch
    from oar.hub import Hub

    hub = Hub()
    before = {m.model_id for m in hub.models.list()}
    registered = export_registered(hub, source, format, name)  # type: ignore[arg-type]
    if registered.model_id in before:
        console.print(
            f"[bold]{escape(registered.model_id)}[/] already holds this export (same source weights, tokenizer, "
            f"format and oar version): nothing registered"
        )
        return
    parity = registered.manifest["parity"]
    console.print(
        f"registered [bold]{escape(registered.model_id)}[/] ({format}); parity max |Δ| "
        f"{parity['max_abs_diff']:.2e}, argmax agreement {parity['argmax_agreement']:.4f} "
        f"on {parity['samples']} validation texts"
    )


def quantize(
    model: str = typer.Argument(..., help="NAME, NAME:VERSION or a run id"),
    method: str = typer.Option(..., help="int8-dynamic | int8-static | int4-weight"),
    block_size: int = typer.Option(32, help="int4-weight: weights per quantization block"),
    max_accuracy_drop: float = typer.Option(1.0, help="refuse a variant losing more accuracy points"),
    calibration_samples: int = typer.Option(256, help="int8-static: training texts to calibrate on"),
    dataset: str = typer.Option(None, help="evaluate on this built-in dataset (default: the lineage's)"),
    name: str = typer.Option(None, help="register the variant under this name (default: NAME-METHOD)"),
) -> None:
    """Quantize with ONNX Runtime, compare with fp32 and register the variant under its own name.

    `oar serve NAME` keeps serving the unquantized model; serve the variant by its name.
    """
    from oar.export.report import table_rows
    from oar.export.variants import QuantizeOptions, quantize_registered  # needs onnx
    from oar.hub import Hub

    hub = Hub()
    before = {m.model_id for m in hub.models.list()}
    options = QuantizeOptions(method, block_size, max_accuracy_drop, calibration_samples, dataset, name)
    outcome = quantize_registered(hub, model, options)
    rows = table_rows([outcome.report])
    table = Table(title=escape(f"{outcome.parent.model_id} -> {method} (test split; p50 of session.run)"))
    for column in rows[0]:
        table.add_column(column)
    for row in rows[1:]:
        table.add_row(*row)
    console.print(table)
    if outcome.refused:
        raise OarError(outcome.refused)
    assert outcome.registered is not None
    variant, parent = escape(outcome.registered.model_id), escape(outcome.parent.model_id)
    done = "already registered as" if outcome.registered.model_id in before else "registered"
    console.print(f"{done} [bold]{variant}[/] (variant {method} of {parent}); serve it: oar serve {variant}")


def pack(
    model: str = typer.Argument(..., help="NAME or NAME:VERSION"),
    target: str = typer.Option("edge", help="edge: a self-contained directory with a runner script"),
    out: str = typer.Option(None, "--out", "-o", help="directory to create (default: ./NAME-VERSION-edge)"),
    archive: bool = typer.Option(False, help="also write OUT.tar.gz"),
) -> None:
    """Write a package as a directory that classifies text with onnxruntime + tokenizers + numpy only."""
    from oar.edge import RUNNER_FILE, pack_edge
    from oar.hub import Hub
    from oar.serve.repository import parse_model_spec

    if target != "edge":
        raise InvalidInputError(f"unknown pack target '{target}'; use edge")
    package = Hub().open_package(*parse_model_spec(model))
    directory = Path(out or f"{package.manifest.name}-{package.manifest.version}-edge")
    written = pack_edge(package, directory.resolve(), archive)
    console.print(
        f'wrote {written}; run: cd {written} && pip install -r requirements.txt && python {RUNNER_FILE} "some text"',
        soft_wrap=True,
        highlight=False,
    )


@import_app.command("paddle")
def import_paddle(
    prefix: str = typer.Argument(..., help="the path prefix given to paddle.jit.save"),
    name: str = typer.Option(..., help="model name in the hub"),
    tokenizer: str = typer.Option(..., help="tokenizer.json that produced the model's input ids"),
    labels: str = typer.Option(None, help="comma-separated class names, in output order"),
    dataset: str = typer.Option(None, help="built-in dataset: real texts for the parity check, and lineage"),
) -> None:
    """Convert a Paddle model with paddle2onnx, check it against Paddle, register it."""
    from oar.hub import Hub
    from oar.importers.paddle import PaddleImport  # needs onnx
    from oar.importers.paddle import import_paddle as run_import

    label_list = [label.strip() for label in labels.split(",")] if labels else None
    spec = PaddleImport(prefix, name, Path(tokenizer), label_list, dataset)
    registered = run_import(Hub(), spec)
    parity = registered.manifest["parity"]
    console.print(
        f"registered [bold]{escape(registered.model_id)}[/]; parity vs Paddle max |Δ| "
        f"{parity['max_abs_diff']:.2e} on {parity['samples']} inputs"
    )
