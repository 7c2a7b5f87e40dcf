"""The Solutions room: the bundled recipes and the reports `oar solutions run` wrote on this hub's home.

Reports are written by the runner's own Report class; an unreadable one is left out. Signed-in users only.
The browser walk's screenshot lands in test-artifacts/studio/solutions-01-list.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from oar.solutions.recipe import Expected
from oar.solutions.report import SOLUTIONS_DIR, Report, check_metrics

from .browser import chromium, serving, shot
from .conftest import PASSWORD, build_world

pytestmark = pytest.mark.timeout(180)
RECIPES = ["digits-edge-int8", "news-topics", "review-sentiment-fewshot"]


def _write_reports(home: Path) -> None:
    folder = home / SOLUTIONS_DIR
    runs = [
        ("news-topics", "2026-01-02T10:00:00+00:00", {"test_accuracy": 0.88, "p50_ms": 1.2, "package_mb": 3.7}),
        ("digits-edge-int8", "2026-01-03T10:00:00+00:00", {"int8_test_accuracy": 0.5, "p50_ms": 2.0}),
    ]
    for recipe, started, metrics in runs:
        checks = check_metrics(metrics, {"int8_test_accuracy": Expected(value=0.9)} if "digits" in recipe else {})
        report = Report(recipe, recipe.title(), "full", started, 60.0, "0", f"oar solutions run {recipe}", metrics,
                        {"model": f"{recipe}:1"}, {"train": 50.0}, checks)  # fmt: skip
        report.write(folder / f"{recipe}-{started[:10]}-full")
    (folder / "broken-run").mkdir()
    (folder / "broken-run" / "report.json").write_text("{not json", encoding="utf-8")


def test_the_api_lists_recipes_and_the_reports_newest_first(world):
    _write_reports(world.home)
    body = world.client("alice").get("/api/v1/solutions").json()
    assert [r["name"] for r in body["recipes"]] == RECIPES
    news = next(r for r in body["recipes"] if r["name"] == "news-topics")
    assert news["command"] == "oar solutions run news-topics" and "test_accuracy" in news["expected"]
    assert [(r["recipe"], r["passed"]) for r in body["reports"]] == [("digits-edge-int8", False), ("news-topics", True)]
    assert body["reports"][0]["below"] == ["int8_test_accuracy"]
    assert world.client().get("/api/v1/solutions").status_code == 401


def test_the_page_needs_a_signed_in_user(world):
    _write_reports(world.home)
    page = world.client("alice").get("/solutions")
    assert page.status_code == 200 and '<a href="/solutions">Solutions</a>' in page.text
    for name in RECIPES:
        assert f'data-recipe="{name}"' in page.text
    assert page.text.count("data-report=") == 2 and "below: int8_test_accuracy" in page.text
    anonymous = world.client().get("/solutions", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")


@pytest.mark.slow
def test_a_member_opens_solutions_from_the_menu(tmp_path: Path, numeric_package: Path):
    home = tmp_path / "home"
    world = build_world(f"sqlite:///{home / 'hub.db'}", home, numeric_package)
    _write_reports(home)
    try:
        with serving(world.app) as url, chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/signin")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("form[action='/signin'] button[type=submit]")
            page.wait_for_url(f"{url}/")
            page.click("nav >> text=Solutions")
            page.wait_for_url(f"{url}/solutions")
            assert page.locator("#recipes tbody tr").count() == 3
            assert page.locator("#reports tbody tr[data-report]").count() == 2
            assert "oar solutions run digits-edge-int8" in page.inner_text("#recipes")
            shot(page, "solutions-01-list")
            assert errors == []
    finally:
        world.app.state.services.close()
