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
    source: str = typer.Argument(None, help="NAME, NAME:VERSION or a run id (or use --model-class)"),
    format: str = typer.Option("onnx", "--format", help="onnx | torch-export (.pt2)"),
    name: str = typer.Option(None, help="register under this name (default: the source's; -pt2 for .pt2)"),
    model_class: str = typer.Option(None, help="your own nn.Module: package.module:ClassName"),
    weights: str = typer.Option(None, help="--model-class: its weights, a .safetensors file"),
    init_kwargs: str = typer.Option(None, help="--model-class: constructor arguments as a JSON object"),
    input_spec: list[str] = typer.Option(  # noqa: B008 (typer reads options from defaults)
        None, help="--model-class: NAME:DTYPE:SHAPE[:MIN..MAX] per input, in forward's order; -1 = dynamic"
    ),
    labels: str = typer.Option(None, help="--model-class: comma-separated class names (a classifier package)"),
) -> None:
    """Re-export a registered model, or export your own module; parity-checked, then registered."""
    if model_class is not None:
        _export_user_module(model_class, weights, init_kwargs, input_spec, labels, name)
        return
    if source is None:
        raise InvalidInputError("pass a registered model (NAME, NAME:VERSION, run id) or --model-class")
    from oar.export.reexport import export_registered
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


def _export_user_module(
    model_class: str, weights: str | None, init_kwargs: str | None, specs: list[str] | None, labels: str | None,
    name: str | None,
) -> None:  # fmt: skip
    from oar.export.module_package import export_module
    from oar.export.user_module import load_user_module, parse_input_spec
    from oar.hub import Hub

    if not weights or not specs or not name:
        raise InvalidInputError("--model-class needs --weights FILE.safetensors, --name and one --input-spec per input")
    model = load_user_module(model_class, weights, init_kwargs)
    label_list = [label.strip() for label in labels.split(",")] if labels else None
    registered = export_module(
        model, [parse_input_spec(s) for s in specs], name=name, labels=label_list, register=True, hub=Hub()
    )
    parity = registered.manifest["parity"]
    console.print(
        f"registered [bold]{registered.model_id}[/] ({registered.task}); parity max |Δ| "
        f"{parity['max_abs_diff']:.2e} on {parity['inputs']}",
        soft_wrap=True,
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
    preprocess = outcome.settings.get("preprocess")
    if preprocess and preprocess["applied"] != "full":
        console.print(escape(f"pre-pass: {preprocess['applied']} ({'; '.join(preprocess['failures'])})"))
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
    """Write a package as a directory that classifies with onnxruntime + numpy (+ tokenizers for text) only."""
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
    tokenizer: str = typer.Option(None, help="text models: the tokenizer.json that produced the input ids"),
    labels: str = typer.Option(None, help="comma-separated class names, in output order"),
    dataset: str = typer.Option(None, help="built-in dataset: real texts/images for parity, and lineage"),
) -> None:
    """Convert a Paddle model with paddle2onnx, check it against Paddle, register it.

    With --tokenizer: a text classifier (text in). Without: any tensor model, an image classifier
    when --labels are given (label/score/probabilities out), else its raw tensors in and out.
    """
    from oar.hub import Hub
    from oar.importers.paddle import PaddleImport  # needs onnx
    from oar.importers.paddle import import_paddle as run_import

    label_list = [label.strip() for label in labels.split(",")] if labels else None
    spec = PaddleImport(prefix, name, Path(tokenizer) if tokenizer else None, label_list, dataset)
    registered = run_import(Hub(), spec)
    parity = registered.manifest["parity"]
    console.print(
        f"registered [bold]{escape(registered.model_id)}[/]; parity vs Paddle max |Δ| "
        f"{parity['max_abs_diff']:.2e} on {parity['samples']} inputs"
    )


@import_app.command("diffusers")
def import_diffusers(
    pipeline_dir: str = typer.Argument(..., help="a folder a diffusers text-to-image pipeline was saved to"),
    name: str = typer.Option(..., help="model name in the hub"),
    max_size: int = typer.Option(1024, help="largest width and height a request may ask for (pixels)"),
    max_steps: int = typer.Option(50, help="most denoising steps a request may ask for"),
    steps: int = typer.Option(20, help="steps when a request names none"),
    concurrency: int = typer.Option(1, min=1, help="generations that run at once on the serving device"),
    max_queue: int = typer.Option(16, min=0, help="generations that may wait; more are refused with 503"),
) -> None:
    """Package a local diffusers pipeline (safetensors weights; nothing is downloaded) as a text-to-image model."""
    from oar.hub import Hub
    from oar.importers.diffusers import PipelineImport, import_pipeline

    spec = PipelineImport(Path(pipeline_dir), name, max_size, max_steps, steps, concurrency, max_queue)
    registered = import_pipeline(Hub(), spec)
    console.print(f"registered [bold]{escape(registered.model_id)}[/] (text-to-image); serve it: oar serve {name}")
