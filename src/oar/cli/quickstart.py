"""``oar quickstart``: train, export, register, serve and query a Chinese sentiment classifier."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from oar._core.settings import oar_home
from oar.client import ModelClient
from oar.hub import Hub
from oar.serve import DEFAULT_PORT
from oar.serve.process import ServerProcess, free_port, port_is_free

if TYPE_CHECKING:
    from oar.pipelines import PipelineResult

console = Console()

EXAMPLES = [
    "这家酒店的服务很周到，房间也很干净，下次还会再来。",
    "质量太差了，用了两天就坏了，非常失望。",
    "物流很快，包装完好，性价比很高，值得购买。",
]
LATENCY_REQUESTS = 200


def quickstart(
    dataset: str = typer.Option("chnsenti", help="built-in text dataset"),
    name: str = typer.Option("chnsenti-cls", help="model name in the hub"),
    epochs: int = typer.Option(None, help="override the recipe's epochs"),
    limit: int = typer.Option(None, help="train on only this many texts (a fast smoke run)"),
    architecture: str = typer.Option(
        "text-cnn", help="text-cnn | text-transformer (a small Transformer: ~4x the training, ~2x the CPU per text)"
    ),
    port: int = typer.Option(DEFAULT_PORT, help="port for the demo server (a free one if taken)"),
) -> None:
    """Run the whole chain on real data and leave the model registered."""
    # torch comes in with the pipelines: imported here, so no other command (`oar serve`!) pays its memory
    from oar.pipelines import TextClassifierRecipe, train_text_classifier

    recipe = TextClassifierRecipe(architecture=architecture, limit=limit)  # an unknown architecture: one red line
    console.rule("[bold]oar quickstart")
    if epochs:
        recipe.trainer.epochs = epochs
    started = time.perf_counter()
    result = train_text_classifier(dataset, name, recipe, Hub())
    _print_training(result)
    with ServerProcess([result.model.model_id], port=port if port_is_free(port) else free_port()) as server:
        predictions, latencies = _query(server.endpoint, result.model.name)
        _print_serving(result, server.endpoint, predictions, latencies)
    console.print(f"quickstart finished in {time.perf_counter() - started:.0f} s; state is in {oar_home()}")
    _print_next_steps(result)


def _query(endpoint: str, model: str) -> tuple[list[dict], np.ndarray]:
    with ModelClient(endpoint) as client:
        predictions = client.predict(model_id=model, inputs={"text": EXAMPLES})
        latencies = []
        for i in range(LATENCY_REQUESTS):
            t0 = time.perf_counter()
            client.predict(model_id=model, inputs={"text": EXAMPLES[i % len(EXAMPLES)]})
            latencies.append(time.perf_counter() - t0)
    return predictions, np.array(latencies) * 1000


def _print_training(result: PipelineResult) -> None:
    counts = result.dataset.counts()
    table = Table(show_header=False, box=None)
    table.add_row(
        "dataset",
        f"{result.dataset_version.name}:{result.dataset_version.version} ({result.dataset_version.digest[:19]})",
    )
    trained_on = int(result.run.metrics.get("train_examples", counts["train"]))
    table.add_row("examples", f"train {trained_on}, valid {counts['valid']}, test {counts['test']}")
    table.add_row("labels", ", ".join(f"{k} {v}" for k, v in result.dataset.label_counts().items()))
    table.add_row("training", f"{result.train_seconds:.0f} s, run {result.run.id}")
    table.add_row("test accuracy", f"[bold green]{result.test_metrics['accuracy']:.4f}[/]")
    table.add_row(
        "export parity",
        f"max |Δlogit| {result.parity.max_abs_diff:.2e} (tolerance "
        f"{result.parity.tolerance:.0e}), argmax agreement {result.parity.argmax_agreement:.4f} "
        f"on {result.parity.samples} test texts",
    )
    table.add_row("model", f"[bold]{result.model.model_id}[/] ({result.model.digest[:19]})")
    console.print(Panel(table, title="trained and registered"))


def _print_serving(result: PipelineResult, endpoint: str, predictions: list[dict], latencies: np.ndarray) -> None:
    table = Table(title=f"served at {endpoint} (Open Inference Protocol v2)")
    table.add_column("text")
    table.add_column("label")
    table.add_column("score", justify="right")
    for text, prediction in zip(EXAMPLES, predictions, strict=True):
        table.add_row(text, prediction["label"], f"{prediction['score']:.3f}")
    console.print(table)
    p50, p99 = np.percentile(latencies, [50, 99])
    console.print(
        f"latency over {len(latencies)} sequential requests (client round trip): p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )


def _print_next_steps(result: PipelineResult) -> None:
    """Plain lines, not a panel, so they can be copied and pasted as they are."""
    model = result.model
    request = '{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["质量很好"]}]}'
    console.print("[bold]next[/]")
    lines = [
        f"  serve it again:    oar serve {model.model_id} --port {DEFAULT_PORT}",
        f"  query with curl:   curl -s http://127.0.0.1:{DEFAULT_PORT}/v2/models/{model.name}/infer -d '{request}'",
        f'  query with Python: from oar import ModelClient; print(ModelClient("http://127.0.0.1:{DEFAULT_PORT}")'
        f'.predict(model_id="{model.name}", inputs={{"text": "质量很好"}}))',
        f"  inspect:           oar models show {model.model_id}; oar runs show {result.run.id}",
    ]
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)
