"""Run a recipe: resolve it, drive its flow under a progress display, check and write the report.

The served model is always stopped, whatever happens (``serving.serve_and_measure`` owns the server
process); a failed step leaves what it registered in the hub and says which step failed.
"""

from __future__ import annotations

import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from oar import __version__
from oar.hub import Hub
from oar.solutions.display import StepDisplay
from oar.solutions.flows import FLOWS, Context, check_sections
from oar.solutions.recipe import RECIPE_FILE, Recipe, find_recipe, load_recipe
from oar.solutions.report import SOLUTIONS_DIR, Report, check_metrics


def resolve(spec: str) -> Recipe:
    """A bundled recipe by name, or a recipe directory / ``recipe.yaml`` path (to try a new one)."""
    path = Path(spec)
    if "/" in spec or spec.endswith((".yaml", ".yml")):
        return load_recipe(path / RECIPE_FILE if path.is_dir() else path)
    return load_recipe(find_recipe(spec).directory / RECIPE_FILE)


def run_recipe(spec: str, reduced: bool = False, hub: Hub | None = None, console: Console | None = None) -> Report:
    """Run recipe ``spec`` end to end and return its report (also written to the run's folder)."""
    console = console or Console()
    recipe = resolve(spec).resolved(reduced)
    check_sections(recipe)
    hub = hub or Hub()
    mode = "reduced" if reduced else "full"
    started_at = datetime.now(UTC)
    folder = hub.home / SOLUTIONS_DIR / f"{recipe.name}-{started_at:%Y%m%d-%H%M%S-%f}-{mode}"
    folder.mkdir(parents=True)
    flow = FLOWS[recipe.flow]
    console.rule(f"[bold]{recipe.title}[/] ({recipe.name}, {mode})")
    began = time.perf_counter()
    with StepDisplay(console, flow.steps) as display:
        outcome = flow.run(Context(recipe, reduced, hub, display, folder))
    report = Report(
        recipe=recipe.name,
        title=recipe.title,
        mode=mode,
        started_at=started_at.isoformat(timespec="seconds"),
        wall_seconds=time.perf_counter() - began,
        oar_version=__version__,
        command=shlex.join(["oar", "solutions", "run", spec, *(["--reduced"] if reduced else [])]),
        metrics={k: v for k, v in outcome.metrics.items() if v is not None},
        models=outcome.models,
        step_seconds=display.seconds,
        checks=check_metrics(outcome.metrics, recipe.expectations(reduced)),
        artifacts=outcome.artifacts,
    )
    report.metrics["wall_seconds"] = report.wall_seconds
    json_path, md_path = report.write(folder)
    report.print(console)
    console.print(f"report: {json_path} and {md_path.name}", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    return report
