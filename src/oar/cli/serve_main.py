"""``python -m oar.cli.serve_main``: ``oar serve`` without importing the other commands.

``oar.cli.main`` imports every command, and training pulls in torch: seconds
before a server can start. Supervised servers (``oar.supervise``) start
through this entry point, so a restart after a crash is quick.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from oar._core.errors import OarError
from oar.cli.serve_command import serve

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(serve)


def main() -> None:
    try:
        app()
    except OarError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
