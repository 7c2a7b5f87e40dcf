"""A text-to-image deployment in headless Chromium: deploy the tiny pipeline, generate from the "try it" box, and
see the image itself (an ``<img>`` the browser decoded), not its bytes.

The screenshot lands in test-artifacts/studio/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from diffusion.tiny_pipeline import SIDE, build_tiny_pipeline  # tests/diffusion, on the path as a top package

from .browser import chromium, serving, shot
from .conftest import PASSWORD, build_world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture()
def site(tmp_path: Path, numeric_package: Path):
    from oar.hub import Hub
    from oar.importers.diffusers import PipelineImport, import_pipeline

    home = tmp_path / "home"  # deployed `oar serve` processes read the hub in OAR_HOME
    world = build_world(f"sqlite:///{home / 'hub.db'}", home, numeric_package)
    pipeline = build_tiny_pipeline(tmp_path / "pipeline")
    spec = PipelineImport(pipeline, "sketches", max_size=64, max_steps=8, default_steps=2)
    package = import_pipeline(Hub(home=tmp_path / "scratch"), spec)  # then registered as alice's
    world.hub.register_model(package.path, "sketches", "alice")
    with serving(world.app) as url, chromium() as browser:
        yield world, url, browser
    world.app.state.services.deployments.close(stop_processes=True)


def test_the_try_it_box_shows_the_generated_image(site):
    _, url, browser = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/signin")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_url(f"{url}/")
    page.goto(f"{url}/models/sketches")
    page.select_option("#deploy-form select[name=model]", "sketches:1")
    page.click("#deploy-form button")
    page.wait_for_url(f"{url}/deployments/*")
    page.wait_for_selector("#deployment-status.running", timeout=240_000)
    assert 'png = client.predict("sketches", inputs={"prompt":' in page.inner_text("#snippet")
    request = {"prompt": "a red lighthouse", "parameters": {"steps": 2, "width": SIDE, "height": SIDE, "seed": 0}}
    page.fill("#try-it textarea[name=inputs]", json.dumps(request))
    page.click("#try-it button")
    page.wait_for_selector(".try-it-output[data-status='200'] img.try-it-image", timeout=120_000)
    size = page.eval_on_selector(
        "img.try-it-image", "img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])"
    )
    assert size == [SIDE, SIDE]
    assert "sketches:1" in page.inner_text(".try-it-output")
    shot(page, "14-try-it-image")
    page.fill("#try-it textarea[name=inputs]", json.dumps({"prompt": "x", "parameters": {"steps": 99}}))
    page.click("#try-it button")
    page.wait_for_selector(".try-it-output[data-status='422']", timeout=30_000)  # the endpoint's 400, relayed
    assert "'steps' must be an integer from 1 to 8" in page.inner_text(".try-it-output")
