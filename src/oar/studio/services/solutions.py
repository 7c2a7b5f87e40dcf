"""The solution recipes shipped with oar, and the reports of the recipe runs made on this hub's home.

Read-only: recipes come from the installed package (``oar.solutions``), reports from
``OAR_HOME/solutions/*/report.json`` written by ``oar solutions run``; an unreadable report is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oar.hub import Hub
from oar.solutions import known_recipes, load_recipe
from oar.solutions.recipe import RECIPE_FILE
from oar.solutions.report import REPORT_JSON, SOLUTIONS_DIR

MAX_REPORTS = 50


@dataclass(frozen=True)
class RecipeView:
    name: str
    title: str
    flow: str
    summary: str
    command: str
    expected: dict[str, str]  # metric -> "≥ 0.82" (full mode)


@dataclass(frozen=True)
class ReportView:
    recipe: str
    mode: str
    started_at: str
    wall_seconds: float
    passed: bool
    below: list[str]
    metrics: dict[str, Any]
    models: dict[str, str]


class SolutionService:
    def __init__(self, hub: Hub) -> None:
        self.folder = hub.home / SOLUTIONS_DIR

    def recipes(self) -> list[RecipeView]:
        views = []
        for entry in known_recipes():
            recipe = load_recipe(entry.directory / RECIPE_FILE)
            expected = {
                metric: f"{'≥' if e.better == 'higher' else '≤'} {e.bound():.4g}"
                for metric, e in recipe.expected.full.items()
            }
            command = f"oar solutions run {recipe.name}"
            views.append(RecipeView(recipe.name, recipe.title, recipe.flow, recipe.summary, command, expected))
        return views

    def reports(self, limit: int = MAX_REPORTS) -> list[ReportView]:
        """The newest reports first."""
        found = [_read(path) for path in self.folder.glob(f"*/{REPORT_JSON}")] if self.folder.is_dir() else []
        views = sorted((v for v in found if v is not None), key=lambda v: v.started_at, reverse=True)
        return views[:limit]


def _read(path: Path) -> ReportView | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ReportView(
            recipe=str(data["recipe"]),
            mode=str(data["mode"]),
            started_at=str(data["started_at"]),
            wall_seconds=float(data["wall_seconds"]),
            passed=bool(data["passed"]),
            below=[str(c["metric"]) for c in data.get("checks", []) if not c.get("ok")],
            metrics={k: v for k, v in data.get("metrics", {}).items() if isinstance(v, int | float)},
            models={str(k): str(v) for k, v in data.get("models", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
