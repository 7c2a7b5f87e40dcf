"""``oar solutions list | run NAME [--reduced] [--home DIR] [--strict]``: end-to-end recipes on bundled data.

Exit codes of ``run``: 0 done (metrics under their expected values are warnings), 1 bad input or a
failed step (one red line), 3 with ``--strict`` when a metric is under its expected value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err = Console(stderr=True)
solutions_app = typer.Typer(help="End-to-end solution recipes on bundled data.", no_args_is_help=True)
EXIT_BELOW_EXPECTED = 3


@solutions_app.command("list")
def list_recipes() -> None:
    """The bundled recipes: name, flow and what each one does."""
    from oar.solutions import known_recipes, load_recipe
    from oar.solutions.recipe import RECIPE_FILE

    table = Table(title="solution recipes (oar solutions run NAME [--reduced])")
    table.add_column("name", no_wrap=True)
    for column in ("flow", "title", "what it does"):
        table.add_column(column)
    for entry in known_recipes():
        recipe = load_recipe(entry.directory / RECIPE_FILE)
        table.add_row(recipe.name, recipe.flow, escape(recipe.title), escape(recipe.summary))
    console.print(table)


@solutions_app.command("run")
def run(
    name: Annotated[
        str, typer.Argument(help="a recipe name (oar solutions list), or a recipe directory / recipe.yaml")
    ],
    reduced: Annotated[
        bool, typer.Option("--reduced", help="a few epochs on a small subset (CI, a first look)")
    ] = False,
    home: Annotated[
        Path | None, typer.Option("--home", help="OAR_HOME for this run: its hub, packages, report")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help=f"exit {EXIT_BELOW_EXPECTED} when a metric is under its expected value")
    ] = False,
) -> None:
    """Run a recipe end to end: train, export, register, serve, query; print and write its report."""
    if home is not None:
        os.environ["OAR_HOME"] = str(home.expanduser().resolve())
        os.environ.pop("OAR_DATABASE_URL", None)  # the run's hub lives in DIR, with the server that serves it
    from oar.solutions.runner import resolve, run_recipe  # the flows import torch only when they run

    recipe = resolve(name)  # a bad name or a broken file fails here, before anything runs
    report = run_recipe(name, reduced=reduced)
    if report.below_expected:
        err.print(
            f"[bold yellow]{len(report.below_expected)} metric(s) of {recipe.name} under their expected values[/]"
            " (see the warnings above)",
            highlight=False,
        )
        if strict:
            raise typer.Exit(EXIT_BELOW_EXPECTED)
