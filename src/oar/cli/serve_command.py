"""``oar serve``: Open Inference Protocol v2 over REST for registered models."""

from __future__ import annotations

import typer
from rich.console import Console

from oar.serve import DEFAULT_HOST, DEFAULT_PORT, build_app
from oar.serve import serve as run_server
from oar.serve.rest import DEFAULT_MAX_BODY_BYTES

console = Console(stderr=True)


def serve(
    models: list[str] = typer.Argument(None, help="NAME or NAME:VERSION; default: latest of every model"),
    host: str = typer.Option(DEFAULT_HOST, help="bind address; loopback by default"),
    port: int = typer.Option(DEFAULT_PORT, help="TCP port"),
    max_body_bytes: int = typer.Option(DEFAULT_MAX_BODY_BYTES, help="larger request bodies get 413"),
    threads: int = typer.Option(0, help="ONNX Runtime intra-op threads per model (0 = its default)"),
    log_level: str = typer.Option("warning", help="debug | info | warning | error"),
) -> None:
    """Serve models from the hub until interrupted."""
    app, loaded = build_app(models or (), max_body_bytes=max_body_bytes, intra_op_threads=threads)
    for model in loaded:
        console.print(f"loaded [bold]{model.name}:{model.version}[/] ({model.manifest.task})")
    console.print(f"serving on http://{host}:{port}/v2  (Ctrl-C to stop)")
    run_server(app, host, port, log_level)
