"""The web UI in headless Chromium: sign in, browse a dataset, follow a model's lineage, compare two runs'
curves, move an alias and see the audit entry, sign out; a viewer is refused a deploy; 404 and 403 pages.

Screenshots of every step land in test-artifacts/studio/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .browser import chromium, serving, shot
from .conftest import PASSWORD, build_world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
MAX_PAGE_BYTES = 300_000


@pytest.fixture()
def site(tmp_path: Path, numeric_package: Path):
    home = tmp_path / "home"  # deployed `oar serve` processes read the hub in OAR_HOME
    world = build_world(f"sqlite:///{home / 'hub.db'}", home, numeric_package)
    with serving(world.app) as url, chromium() as browser:
        yield world, url, browser
    world.app.state.services.deployments.close(stop_processes=True)


def _sign_in(page, url: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/signin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_url(f"{url}/")


def test_a_member_walks_through_the_studio(site):
    world, url, browser = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{url}/signin")
    shot(page, "01-signin")
    _sign_in(page, url, "alice")
    assert "alice" in page.inner_text("header")
    assert "sentiment:2 registered" in page.inner_text(".activity")
    shot(page, "02-home")

    page.click("nav >> text=Datasets")
    page.click("a[href='/datasets/reviews']")
    page.wait_for_url(f"{url}/datasets/reviews")
    assert "short product reviews" in page.inner_text("#datacard")
    assert "48" in page.inner_text("#splits")
    assert page.locator("#samples tbody tr").count() == 20
    page.click("#samples .tabs >> text=test")
    assert page.locator("#samples tbody tr").count() == 6
    shot(page, "03-dataset")

    page.goto(f"{url}/models")
    page.click("a[href='/models/sentiment']")
    page.wait_for_url(f"{url}/models/sentiment")
    page.click("a[href='/models/sentiment/versions/2']")
    page.wait_for_url(f"{url}/models/sentiment/versions/2")
    lineage = page.locator("svg.lineage")
    assert lineage.locator("a.lineage-node").count() == 4  # dataset, run, parent, this version
    shot(page, "04-model-version-lineage")
    page.click(f"svg.lineage a[href='/runs/{world.runs[1]}']")
    page.wait_for_url(f"{url}/runs/{world.runs[1]}")
    page.wait_for_selector(".plot[data-drawn='1']")
    shot(page, "05-run-from-lineage")
    page.click("main a[href='/models/sentiment/versions/2']")  # and back along the lineage, from the run
    page.wait_for_url(f"{url}/models/sentiment/versions/2")

    page.goto(f"{url}/runs")
    for run_id in world.runs:
        page.check(f"input[value='{run_id}']")
    page.click("text=Compare the ticked runs")
    page.wait_for_selector(".plot[data-metric='train_loss'][data-drawn='2']")
    assert page.locator(".plot[data-metric='train_loss'] .legend").count() == 1  # two curves, one legend
    shot(page, "06-compare-runs")

    page.goto(f"{url}/models/sentiment")
    page.fill("#alias-form input[name=alias]", "production")
    page.fill("#alias-form input[name=version]", "1")
    page.click("#alias-form button")
    page.fill("#alias-form input[name=version]", "2")
    page.click("#alias-form button")
    history = page.inner_text("#alias-history")
    assert "v1 → v2" in history and "new → v1" in history and "alice" in history
    assert "sentiment@production now points at version 2" in page.inner_text(".flash")
    shot(page, "07-alias-moved")

    page.click("#signout")
    page.wait_for_url(f"{url}/signin")
    page.goto(f"{url}/runs")
    assert page.url.startswith(f"{url}/signin")  # signed out: back to the sign-in page
    shot(page, "08-signed-out")
    assert errors == []


def test_a_member_deploys_a_model_and_calls_it_from_the_try_it_box(site):
    _, url, browser = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, url, "alice")
    page.goto(f"{url}/models/sentiment")
    page.select_option("#deploy-form select[name=model]", "sentiment:2")
    page.click("#deploy-form button")
    page.wait_for_url(f"{url}/deployments/*")
    page.wait_for_selector("#deployment-status.running", timeout=180_000)
    page.wait_for_function("document.querySelector('[data-figure=requests]').textContent !== '-'", timeout=30_000)
    endpoint = page.inner_text("#endpoint")
    assert endpoint.startswith("http://127.0.0.1:")
    assert f'ModelClient("{endpoint}"' in page.inner_text("#snippet")
    assert page.inner_text("#deployment-token").startswith("oard_")
    shot(page, "12-deployment")
    page.click("#try-it button")
    page.wait_for_selector(".try-it-output[data-status='200']", timeout=30_000)
    answer = page.inner_text(".try-it-output")
    assert '"model_id": "sentiment:2"' in answer and '"output"' in answer
    shot(page, "13-try-it")
    page.goto(f"{url}/models/sentiment/versions/2")  # the version page calls the same deployment
    page.click("#try-it button")
    page.wait_for_selector(".try-it-output[data-status='200']", timeout=30_000)
    page.goto(f"{url}/deployments")
    page.click("tbody a")
    page.click("#undeploy-form button")
    page.wait_for_url(f"{url}/deployments")
    assert "nothing deployed" in page.inner_text("main")


def test_a_viewer_is_refused_a_deploy(site):
    _, url, browser = site
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    _sign_in(page, url, "vera")
    page.goto(f"{url}/models/sentiment")
    assert page.locator("#deploy-form").count() == 0
    assert "Viewers cannot deploy" in page.inner_text("body")
    # The form a member would see, submitted anyway with a valid CSRF token: refused with a 403 page.
    page.evaluate(
        """() => { const f = document.createElement('form'); f.method = 'post'; f.action = '/deployments';
        for (const [k, v] of [['csrf_token', document.querySelector('meta[name=csrf-token]').content],
                              ['model', 'sentiment:1']]) {
          const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
        document.body.appendChild(f); f.submit(); }"""
    )
    page.wait_for_load_state()
    assert "a viewer cannot deploy" in page.inner_text(".error-page")
    shot(page, "09-viewer-refused-deploy")


def test_missing_pages_and_forged_forms_get_proper_error_pages(site):
    _, url, browser = site
    page = browser.new_page()
    response = page.goto(f"{url}/models/no-such-model")
    assert response.status == 404 and "Not found" in page.inner_text("h1")
    shot(page, "10-404")
    _sign_in(page, url, "bob")
    forged = page.request.post(f"{url}/models/sentiment/delete", form={"csrf_token": "forged"})
    assert forged.status == 403 and "CSRF" in forged.text()
    page.goto(f"{url}/models/sentiment")
    page.evaluate(
        """() => { const f = document.createElement('form'); f.method = 'post'; f.action = '/models/sentiment/delete';
        const i = document.createElement('input'); i.name = 'csrf_token';
        i.value = document.querySelector('meta[name=csrf-token]').content; f.appendChild(i);
        document.body.appendChild(f); f.submit(); }"""
    )
    page.wait_for_load_state()
    assert "owner" in page.inner_text(".error-page")  # bob does not own alice's model
    shot(page, "11-403-not-owner")


def test_pages_are_small_and_assets_come_from_the_studio(site):
    world, url, browser = site
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    _sign_in(page, url, "alice")
    for path in (
        "/",
        "/datasets/reviews",
        "/models/sentiment",
        "/models/sentiment/versions/2",
        f"/runs/{world.runs[0]}",
        f"/runs/compare?ids={world.runs[0]}&ids={world.runs[1]}",
    ):
        response = page.goto(url + path)
        assert response.status == 200, path
        assert len(response.body()) < MAX_PAGE_BYTES, path
    assert requested and all(r.startswith(url) for r in requested)  # nothing from a CDN: works air-gapped
