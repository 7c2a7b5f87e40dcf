"""``oar``: entry point. Errors the user can fix print one red line and exit 1, never a traceback.

Every command module imports only the core install (no torch) at the top; what a command needs
beyond it is imported inside the command, so ``oar serve`` and ``oar models list`` work on a
serving machine and a training command there names the extra to install (``oar.cli.extras``).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from oar import __version__
from oar._core.errors import OarError
from oar.cli import (
    competitions_commands,
    deployments_commands,
    export_commands,
    fewshot_commands,
    hub_commands,
    jobs_commands,
    notebooks_commands,
    ops_commands,
    quickstart,
    serve_command,
    solutions_commands,
    studio_command,
    train_command,
)
from oar.cli.extras import missing_dependency_message

app = typer.Typer(
    name="oar",
    help="oar: dataset -> train -> export -> hub -> serve, in one tool.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"oar {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print oar's version and exit"
    ),
) -> None:
    """oar: dataset -> train -> export -> hub -> serve, in one tool."""


app.command("quickstart")(quickstart.quickstart)
app.command("serve")(serve_command.serve)
app.command("train")(train_command.train)
app.add_typer(hub_commands.datasets_app, name="datasets")
app.add_typer(hub_commands.runs_app, name="runs")
app.add_typer(hub_commands.models_app, name="models")
app.add_typer(hub_commands.hub_app, name="hub")
app.command("export")(export_commands.export)
app.command("quantize")(export_commands.quantize)
app.command("pack")(export_commands.pack)
app.add_typer(export_commands.import_app, name="import")
app.add_typer(studio_command.studio_app, name="studio")  # imports the studio only when it runs
app.command("login")(studio_command.login)
app.command("logout")(studio_command.logout)
app.add_typer(jobs_commands.jobs_app, name="jobs")
app.add_typer(ops_commands.ops_app, name="ops")
app.add_typer(competitions_commands.competitions_app, name="competitions")
app.add_typer(notebooks_commands.notebooks_app, name="notebooks")
app.add_typer(solutions_commands.solutions_app, name="solutions")
app.add_typer(deployments_commands.deployments_app, name="deployments")
app.add_typer(fewshot_commands.fewshot_app, name="fewshot")

err = Console(stderr=True)


def error_line(message: str) -> None:
    """Print ``error: message`` in red; the message is escaped, so ``[batch, 16]`` shows as it is."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def main() -> None:
    try:
        app()
    except OarError as exc:
        error_line(str(exc))
        sys.exit(1)
    except ModuleNotFoundError as exc:
        message = missing_dependency_message(exc, sys.argv[1:])
        if message is None:
            raise
        error_line(message)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
