"""``oar``: entry point. Errors the user can fix print one red line and exit 1, never a traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from oar._core.errors import OarError
from oar.cli import export_commands, hub_commands, jobs_commands, quickstart, serve_command, train_command

app = typer.Typer(
    name="oar",
    help="oar: dataset -> train -> export -> hub -> serve, in one tool.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("quickstart")(quickstart.quickstart)
app.command("serve")(serve_command.serve)
app.command("train")(train_command.train)
app.add_typer(hub_commands.datasets_app, name="datasets")
app.add_typer(hub_commands.runs_app, name="runs")
app.add_typer(hub_commands.models_app, name="models")
app.command("export")(export_commands.export)
app.command("quantize")(export_commands.quantize)
app.command("pack")(export_commands.pack)
app.add_typer(export_commands.import_app, name="import")
app.add_typer(jobs_commands.jobs_app, name="jobs")

err = Console(stderr=True)


def main() -> None:
    try:
        app()
    except OarError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
