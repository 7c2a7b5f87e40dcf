"""The competition room in headless Chromium: the organizer creates a competition from the page; Alice
sends a bad file (refused line by line, no quota used), then a predictions file; Bob submits a model
package, run in the sandbox; the public board updates; the organizer ends it and the private board
appears. Screenshots land in test-artifacts/competitions/."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from oar.competitions import hidden
from studio.browser import ARTIFACTS, chromium, serving
from studio.conftest import PASSWORD, studio_config

from .conftest import spec_dict

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
SHOTS = ARTIFACTS.parent / "competitions"


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(browser, url: str, username: str):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/signin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_url(f"{url}/")
    return page


def wait_for(page, selector: str, text: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while text not in page.inner_text(selector):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {selector}"
        time.sleep(1.0)
        page.reload()


def test_organizer_two_participants_boards_and_the_end(hub, home, digits_package, tmp_path):
    from oar.studio.app import create_app

    hub.register_model(digits_package, "digits-lr", "bob")
    app = create_app(studio_config(home, f"sqlite:///{home / 'hub.db'}"), hub)
    accounts = app.state.services.accounts
    for name, role in {"admin": "admin", "alice": "member", "bob": "member"}.items():
        accounts.create_user(name, role, PASSWORD)
    with serving(app) as url, chromium() as browser:
        organizer = sign_in(browser, url, "admin")
        organizer.click("nav >> text=Competitions")
        organizer.fill("#spec", yaml.safe_dump(spec_dict(name="browser-cup")))
        shot(organizer, "01-create")
        organizer.click("#create-form button[type=submit]")
        organizer.wait_for_url(f"{url}/competitions/browser-cup")
        assert "open" in organizer.inner_text("#competition-state")
        shot(organizer, "02-created")

        truth = hidden.load_hidden(home, "browser-cup")
        alice = sign_in(browser, url, "alice")
        alice.goto(f"{url}/competitions/browser-cup")
        inputs = alice.request.get(f"{url}/api/v1/competitions/browser-cup/inputs").text()
        assert "label" not in inputs and len(inputs.splitlines()) == len(truth.ids)
        bad = tmp_path / "bad.csv"
        bad.write_text("id,prediction\nt00000,7\nt00000,7\n")
        alice.set_input_files("#predictions-file", str(bad))
        alice.click("#submit-form button[type=submit]")
        flash = alice.inner_text(".flash")
        assert "not submitted (no quota used)" in flash and "line 3: id 't00000' repeated" in flash
        assert alice.inner_text("#total-left") == "5"
        shot(alice, "03-bad-file-refused")
        good = tmp_path / "good.jsonl"
        good.write_text(
            "".join(
                json.dumps({"id": i, "prediction": int(y)}) + "\n" for i, y in zip(truth.ids, truth.labels, strict=True)
            )
        )
        alice.set_input_files("#predictions-file", str(good))
        alice.click("#submit-form button[type=submit]")
        assert alice.inner_text(".flash").endswith(" scored")  # a file under a built-in metric: at once
        wait_for(alice, "#public-board", "alice")
        assert alice.inner_text("#total-left") == "4"
        shot(alice, "04-file-scored")

        bob = sign_in(browser, url, "bob")
        bob.goto(f"{url}/competitions/browser-cup")
        bob.fill("#model-ref", "digits-lr:1")
        bob.click("#submit-form button[type=submit]")
        wait_for(bob, "#public-board", "bob")
        assert "ms" in bob.inner_text("#mine")  # latency measured in the sandbox
        assert bob.locator("#private-board").count() == 0
        shot(bob, "05-package-scored")

        organizer.reload()  # the creator organizes: the private board live, and the organize forms
        assert "(live, organizers only" in organizer.inner_text("#private-board")
        organizer.fill("#organizer-users", "carol")
        organizer.click("#organizers-form button[type=submit]")
        assert "no active user 'carol'" in organizer.inner_text("body")
        organizer.goto(f"{url}/competitions/browser-cup")
        organizer.fill("#edit-form input[name=title]", "Browser cup, round 1")
        organizer.click("#edit-form button[type=submit]")
        assert "Browser cup, round 1" in organizer.inner_text("h1")
        shot(organizer, "05b-organizer-view")
        organizer.click("#close-form button[type=submit]")
        organizer.wait_for_url(f"{url}/competitions/browser-cup")
        assert "ended" in organizer.inner_text("#competition-state")
        bob.reload()
        board = bob.inner_text("#private-board")
        assert "alice" in board and "bob" in board
        assert bob.locator("#private-board tbody tr").first.get_attribute("data-user") == "alice"  # all right
        shot(bob, "06-private-board")
