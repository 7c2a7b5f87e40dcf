"""`oar solutions`: the bundled recipes run end to end in reduced mode, and bad input is one clear error.

Each reduced run is a real `oar solutions run` process: it trains, exports, registers, starts `oar serve`,
queries it with ModelClient, stops it, and writes report.json / report.md; the test reads them back and
checks the hub, the report's checks against the recipe's reduced expectations, and that no server is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from oar._core.errors import InvalidInputError
from oar.hub import Hub
from oar.solutions import known_recipes, load_recipe
from oar.solutions.recipe import RECIPE_FILE, Expected, recipes_root
from oar.solutions.report import Report, check_metrics

BUNDLED = ("digits-edge-int8", "news-topics", "review-sentiment-fewshot")


def oar_cli(*args: str, home: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    env.pop("OAR_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "oar.cli.main", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def one_clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def test_list_shows_every_bundled_recipe(tmp_path):
    listed = oar_cli("solutions", "list", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in BUNDLED:
        assert name in listed.stdout
    assert [entry.name for entry in known_recipes()] == sorted(BUNDLED)


def test_every_bundled_recipe_validates_with_its_readme_and_job_in_both_modes():
    from oar.train.job import parse_job

    for entry in known_recipes():
        recipe = load_recipe(entry.directory / RECIPE_FILE)
        assert (entry.directory / "README.md").read_text(encoding="utf-8").startswith("# ")
        assert recipe.expected.full and recipe.expected.reduced, entry.name
        for reduced in (False, True):
            resolved = recipe.resolved(reduced)
            if resolved.job is not None:
                parse_job(resolved.job, entry.name)  # the job section is a valid `oar train` job file
        if recipe.job is not None:  # reduced mode is smaller than the full run
            small = recipe.resolved(True).job
            assert small["data"].get("limit") and small["trainer"]["epochs"] < recipe.job["trainer"]["epochs"]


def test_an_unknown_recipe_is_one_error_line_naming_the_known_ones(tmp_path):
    result = oar_cli("solutions", "run", "no-such-recipe", "--reduced", home=tmp_path)
    one_clean_error(result, "unknown recipe 'no-such-recipe'", *BUNDLED)


BROKEN = {
    "not YAML": ("name: [news\n", "is not valid YAML: line"),
    "not a mapping": ("- a\n- b\n", "expected a mapping"),
    "unknown key and bad value": (
        "name: broken\ntitle: t\nflow: text-job\njob: {}\ntypo: 1\nexpected: {full: {acc: {value: high}}}\n",
        "typo: unknown key",
    ),
    "unknown flow": ("name: broken\ntitle: t\nflow: teleport\n", "flow: Input should be"),
    "missing section of its flow": (
        "name: broken\ntitle: t\nflow: image-int8\njob: {}\n",
        "needs the section(s): quantize",
    ),
    "name differs from directory": ("name: other\ntitle: t\nflow: fewshot\nfewshot: {dataset: chnsenti}\n", "differs"),
    "bad job section": (
        "name: broken\ntitle: t\nflow: text-job\njob: {data: {dataset: nope}, model: {arch: text-cnn}}\n",
        "unknown dataset 'nope'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_recipe_file_is_one_clear_error(tmp_path, case):
    from oar.solutions.flows import check_sections
    from oar.solutions.runner import resolve

    content, message = BROKEN[case]
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / RECIPE_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInputError) as raised:
        check_sections(resolve(str(folder)))
    assert message in str(raised.value)


def test_the_command_refuses_a_broken_recipe_in_one_line_before_anything_runs(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / RECIPE_FILE).write_text(BROKEN["bad job section"][0], encoding="utf-8")
    result = oar_cli("solutions", "run", str(folder / RECIPE_FILE), "--reduced", home=tmp_path / "home")
    one_clean_error(result, "recipe broken: job is invalid", "unknown dataset 'nope'")
    assert not (tmp_path / "home" / "solutions").exists()


def test_checks_warn_under_expected_and_name_what_was_not_measured():
    expectations = {
        "accuracy": Expected(value=0.9, tolerance=0.05),
        "p50_ms": Expected(value=2.0, tolerance=1.0, better="lower"),
        "missing": Expected(value=1.0),
    }
    checks = {c.metric: c for c in check_metrics({"accuracy": 0.86, "p50_ms": 3.5}, expectations)}
    assert checks["accuracy"].ok and not checks["p50_ms"].ok and not checks["missing"].ok
    report = Report("r", "R", "reduced", "now", 1.0, "0", "oar solutions run r", {"accuracy": 0.86, "p50_ms": 3.5},
                    {"model": "m:1"}, {}, list(checks.values()))  # fmt: skip
    console = Console(record=True, width=200)
    report.print(console)
    text = console.export_text()
    assert "warning: below expected: p50_ms 3.5, expected ≤ 3 (2 ± 1)" in text
    assert "missing not measured" in text and "accuracy 0.86" not in text.split("warning")[1]


def _read_report(home: Path, name: str) -> dict:
    (folder,) = (home / "solutions").glob(f"{name}-*-reduced")
    assert (folder / "report.md").read_text(encoding="utf-8").startswith("# ")
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def _assert_served_and_stopped(home: Path, report: dict) -> None:
    """Every model the report names is in the run's hub, and no `oar serve` of the run is left."""
    hub = Hub(home)
    for model_id in report["models"].values():
        name, version = model_id.split(":")
        assert hub.models.get(name, int(version)).model_id == model_id
    assert report["artifacts"]["server_exit_code"] == "0"
    assert not list((home / "serving").glob("*.json"))  # `oar serve` removes its record when it exits
    assert report["metrics"]["p50_ms"] > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_digits_edge_int8_reduced_quantizes_packs_serves_and_meets_its_expectations(tmp_path):
    home = tmp_path / "home"
    result = oar_cli(
        "solutions", "run", "digits-edge-int8", "--reduced", "--strict", "--home", str(home), home=tmp_path
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = _read_report(home, "digits-edge-int8")
    assert report["passed"] and {c["metric"] for c in report["checks"]} >= {"fp32_test_accuracy", "size_ratio"}
    metrics = report["metrics"]
    assert metrics["int8_model_kb"] < metrics["fp32_model_kb"]
    assert set(report["models"]) == {"fp32", "int8"}
    assert Path(report["artifacts"]["edge_pack"], "classify.py").is_file()
    assert metrics["edge_accuracy"] > 0.5 and metrics["int8_served_accuracy"] > 0.5
    _assert_served_and_stopped(home, report)
    assert "report:" in result.stdout and "registered and served" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_news_topics_reduced_trains_serves_and_strict_fails_on_an_unmet_expectation(tmp_path):
    """The bundled recipe with one impossible expectation added: its own checks pass, --strict exits 3."""
    folder = tmp_path / "news-topics"
    shutil.copytree(recipes_root() / "news-topics", folder)
    raw = yaml.safe_load((folder / RECIPE_FILE).read_text(encoding="utf-8"))
    bundled_checks = set(raw["expected"]["reduced"])
    raw["expected"]["reduced"]["p99_ms"] = {"value": 0.0, "better": "lower"}
    (folder / RECIPE_FILE).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    home = tmp_path / "home"
    result = oar_cli("solutions", "run", str(folder), "--reduced", "--strict", "--home", str(home), home=tmp_path)
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    assert "warning: below expected: p99_ms" in result.stdout and "Traceback" not in result.stderr
    report = _read_report(home, "news-topics")
    failed = {c["metric"] for c in report["checks"] if not c["ok"]}
    assert failed == {"p99_ms"} and bundled_checks <= {c["metric"] for c in report["checks"]}
    assert report["metrics"]["test_accuracy"] > 0.3 and report["metrics"]["package_mb"] > 0
    _assert_served_and_stopped(home, report)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_review_sentiment_fewshot_reduced_serves_its_model(tmp_path):
    home = tmp_path / "home"
    result = oar_cli(
        "solutions", "run", "review-sentiment-fewshot", "--reduced", "--strict", "--home", str(home), home=tmp_path
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = _read_report(home, "review-sentiment-fewshot")
    assert report["passed"] and report["metrics"]["served_accuracy"] > 0.5
    _assert_served_and_stopped(home, report)
