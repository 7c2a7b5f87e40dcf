"""A recipe run's report: its metrics checked against the recipe's expectations, printed and written to disk.

``report.json`` is for machines (CI, dashboards), ``report.md`` for people; both go into the run's
folder under ``OAR_HOME/solutions/``. A metric under its expected value is a warning, not a crash:
the model is still registered and served, and ``--strict`` turns the warning into an exit code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oar.solutions.recipe import Expected

SOLUTIONS_DIR = "solutions"  # under OAR_HOME: one folder per run, holding report.json and report.md
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


@dataclass(frozen=True)
class Check:
    metric: str
    measured: float | None
    expected: float
    tolerance: float
    better: str
    bound: float
    ok: bool

    def sentence(self) -> str:
        sign = "≥" if self.better == "higher" else "≤"
        got = "not measured" if self.measured is None else f"{self.measured:.4g}"
        return f"{self.metric} {got}, expected {sign} {self.bound:.4g} ({self.expected:g} ± {self.tolerance:g})"


def check_metrics(metrics: dict[str, Any], expectations: dict[str, Expected]) -> list[Check]:
    checks = []
    for metric, expected in expectations.items():
        value = metrics.get(metric)
        measured = float(value) if isinstance(value, int | float) else None
        ok = measured is not None and expected.met_by(measured)
        checks.append(
            Check(metric, measured, expected.value, expected.tolerance, expected.better, expected.bound(), ok)
        )
    return checks


@dataclass
class Report:
    recipe: str
    title: str
    mode: str  # "full" | "reduced"
    started_at: str
    wall_seconds: float
    oar_version: str
    command: str
    metrics: dict[str, Any]
    models: dict[str, str]  # role -> model id ("model", "fp32", "int8")
    step_seconds: dict[str, float]
    checks: list[Check] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    folder: str = ""

    @property
    def below_expected(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = not self.below_expected
        return data

    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = str(folder)
        json_path, md_path = folder / REPORT_JSON, folder / REPORT_MD
        json_path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        md_path.write_text(self.markdown(), encoding="utf-8")
        return json_path, md_path

    def markdown(self) -> str:
        lines = [
            f"# {self.title} (`{self.recipe}`, {self.mode})",
            "",
            f"`{self.command}`: oar {self.oar_version}, started {self.started_at}, {self.wall_seconds:.0f} s wall",
            "",
            "| metric | value |",
            "|---|---:|",
            *(f"| {name} | {_fmt(value)} |" for name, value in self.metrics.items()),
            "",
            "| expected | measured | bound | result |",
            "|---|---:|---:|---|",
            *(
                f"| {c.metric} | {_fmt(c.measured)} | {'≥' if c.better == 'higher' else '≤'} {c.bound:.4g} "
                f"| {'ok' if c.ok else '**below expected**'} |"
                for c in self.checks
            ),
            "",
            "Models: " + ", ".join(f"{role} `{model}`" for role, model in self.models.items()),
            "",
            "Steps: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.step_seconds.items()),
            "",
        ]
        return "\n".join(lines)

    def print(self, console: Console) -> None:
        table = Table(title=escape(f"{self.title} ({self.mode}) in {self.wall_seconds:.0f} s"))
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_column("expected", justify="right")
        by_metric = {check.metric: check for check in self.checks}
        for name, value in self.metrics.items():
            check = by_metric.get(name)
            if check is None:
                table.add_row(name, _fmt(value), "")
                continue
            mark = "[green]ok[/]" if check.ok else "[bold yellow]BELOW[/]"
            sign = "≥" if check.better == "higher" else "≤"
            table.add_row(name, _fmt(value), f"{sign} {check.bound:.4g} {mark}")
        console.print(table)
        for check in self.below_expected:
            console.print(f"[bold yellow]warning:[/] below expected: {escape(check.sentence())}", soft_wrap=True)
        models = ", ".join(f"{role} {model}" for role, model in self.models.items())
        console.print(escape(f"registered and served: {models}"), highlight=False, soft_wrap=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value and abs(value) < 1e-3:
            return f"{value:.2e}"  # a parity difference: 0.0000 would hide its size
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return "-" if value is None else str(value)
