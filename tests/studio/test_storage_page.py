"""The Storage page and GET /api/v1/storage: an admin sees every owner's bytes, a member their own; on
SQLite and PostgreSQL, then in headless Chromium (screenshot: test-artifacts/studio/storage-*.png)."""

from __future__ import annotations

import re

import pytest

from oar.hub.stores import record_size

from .browser import chromium, serving, shot
from .conftest import PASSWORD

pytestmark = pytest.mark.timeout(180)


def _package_bytes(hub, name: str) -> int:  # type: ignore[no-untyped-def]
    """What the owner's packages hold on disk, each distinct package once: the figure to match."""
    digests = {v.digest for v in hub.models.versions(name).items}
    return sum(p.stat().st_size for d in digests for p in hub.artifacts.fetch(d).rglob("*") if p.is_file())


def test_the_api_gives_an_admin_every_owner_and_a_member_their_own(world):
    hub = world.hub
    dataset = hub.datasets.get("reviews")
    alice_bytes = _package_bytes(hub, "sentiment")
    body = world.client("admin").get("/api/v1/storage").json()
    assert body["scope"] == "all" and [o["owner"] for o in body["owners"]] == ["alice", "bob"]
    alice = body["owners"][0]
    assert (alice["model_versions"], alice["packages"], alice["model_bytes"]) == (2, 2, alice_bytes)
    assert alice["dataset_versions"] == 1
    assert alice["dataset_bytes"] == record_size(dataset.card, dataset.counts, hub.datasets.samples("reviews", 1))
    assert alice["bytes"] == alice["model_bytes"] + alice["dataset_bytes"] and alice["unsized_versions"] == 0
    assert body["model_bytes"] == alice_bytes + _package_bytes(hub, "digits")
    mine = world.client("alice").get("/api/v1/storage").json()
    assert mine["scope"] == "own" and [o["owner"] for o in mine["owners"]] == ["alice"]
    assert mine["owners"][0] == alice and mine["bytes"] == alice["bytes"]
    assert world.client("vera").get("/api/v1/storage").json()["owners"] == []
    assert world.client().get("/api/v1/storage").status_code == 401


def test_the_page_shows_the_same_figures(world):
    html = world.client("admin").get("/storage").text
    assert '<a href="/storage">Storage</a>' in html
    rows = re.findall(r"<tr>\s*<td>(\w+)</td>", html.split('id="storage"')[1])
    assert rows == ["alice", "bob"]
    total = world.client("admin").get("/api/v1/storage").json()["bytes"]
    assert f'id="total" title="{total} bytes"' in html
    member = world.client("bob").get("/storage").text
    assert re.findall(r"<tr>\s*<td>(\w+)</td>", member.split('id="storage"')[1]) == ["bob"]
    assert world.client().get("/storage", follow_redirects=False).status_code in (303, 401)


@pytest.mark.slow
def test_storage_in_a_browser_for_an_admin_and_a_member(tmp_path, numeric_package):
    from .conftest import build_world

    home = tmp_path / "home"
    world = build_world(f"sqlite:///{home / 'hub.db'}", home, numeric_package)
    try:
        with serving(world.app) as url, chromium() as browser:
            for user, owners in (("admin", ["alice", "bob"]), ("alice", ["alice"])):
                page = browser.new_context(viewport={"width": 1280, "height": 700}).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                page.goto(f"{url}/signin")
                page.fill("input[name=username]", user)
                page.fill("input[name=password]", PASSWORD)
                page.click("form[action='/signin'] button[type=submit]")
                page.wait_for_url(f"{url}/")
                page.click("nav >> text=Storage")
                page.wait_for_url(f"{url}/storage")
                cells = page.locator("#storage tbody tr td:first-child").all_inner_texts()
                assert cells == owners and errors == []
                assert re.fullmatch(r"[\d.]+ (B|KiB|MiB)", page.locator("#total").inner_text())
                shot(page, f"storage-{user}")
    finally:
        world.app.state.services.close()
