"""Sessions and the pages that changed with them, in headless Chromium: a new token shown once and never in a
cookie, a copied cookie dead after sign-out, a password change that asks for the current password, an admin's
new-user link and "sign out everywhere", the home page's run line, the favicon, and the "try it" box on a
deployment that is still starting. Screenshots land in test-artifacts/studio/sessions-*.png."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from oar.hub.orm import RunRow
from oar.studio.orm import DeploymentRow

from .browser import chromium, serving, shot
from .conftest import PASSWORD, build_world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture()
def site(tmp_path: Path, numeric_package: Path):
    home = tmp_path / "home"
    world = build_world(f"sqlite:///{home / 'hub.db'}", home, numeric_package)
    with serving(world.app) as url, chromium() as browser:
        yield world, url, browser


def _sign_in(browser, url: str, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{url}/signin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_url(f"{url}/")
    return context, page


def _me(context, url: str) -> int:  # type: ignore[no-untyped-def]
    return context.request.get(f"{url}/api/v1/me").status


def _cookie_text(context) -> str:  # type: ignore[no-untyped-def]
    text = []
    for cookie in context.cookies():
        text.append(cookie["value"])
        for part in cookie["value"].split("."):
            with contextlib.suppress(ValueError):
                text.append(base64.urlsafe_b64decode(part + "==").decode("utf-8", "replace"))
    return "\n".join(text)


def test_a_new_token_is_shown_once_and_a_copied_cookie_dies_at_sign_out(site):
    _, url, browser = site
    alice, page = _sign_in(browser, url, "alice")
    page.goto(f"{url}/account/tokens")
    page.fill("input[name=name]", "laptop")
    page.click("form[action='/account/tokens'] button")
    token = page.inner_text("#new-token code")
    assert token.startswith("oar_") and token not in _cookie_text(alice)
    shot(page, "sessions-01-new-token")
    page.goto(f"{url}/account/tokens")
    assert page.locator("#new-token").count() == 0 and "laptop" in page.inner_text("table")

    thief = browser.new_context()
    thief.add_cookies(alice.cookies())
    assert _me(thief, url) == 200
    page.click("#signout")
    page.wait_for_url(f"{url}/signin")
    assert _me(thief, url) == 401
    stolen = thief.new_page()
    stolen.goto(f"{url}/account/tokens")
    assert stolen.url.startswith(f"{url}/signin")
    shot(stolen, "sessions-02-copied-cookie-after-sign-out")


def test_a_password_change_asks_for_the_current_one_and_signs_out_other_browsers(site):
    _, url, browser = site
    laptop, page = _sign_in(browser, url, "bob")
    phone, _ = _sign_in(browser, url, "bob")
    page.goto(f"{url}/account/password")
    page.fill("input[name=current]", "not my password")
    page.fill("input[name=password]", "a brand new secret")
    page.fill("input[name=confirm]", "a brand new secret")
    page.click("form[action='/account/password'] button")
    assert "current password is wrong" in page.inner_text(".error")
    shot(page, "sessions-03-password-wrong-current")
    page.fill("input[name=current]", PASSWORD)
    page.fill("input[name=password]", "a brand new secret")
    page.fill("input[name=confirm]", "a brand new secret")
    page.click("form[action='/account/password'] button")
    page.wait_for_url(f"{url}/")
    assert "every other browser is signed out" in page.inner_text(".flash")
    assert _me(laptop, url) == 200 and _me(phone, url) == 401


def test_an_admin_adds_a_user_and_signs_another_out_everywhere(site):
    _, url, browser = site
    vera, _ = _sign_in(browser, url, "vera")
    admin, page = _sign_in(browser, url, "admin")
    page.goto(f"{url}/admin/users")
    page.fill("form[action='/admin/users'] input[name=username]", "carol")
    page.click("form[action='/admin/users'] button")
    link = page.inner_text("#new-link code")
    assert "/signin/link/oar_" in link and link.rsplit("/", 1)[1] not in _cookie_text(admin)
    shot(page, "sessions-04-new-user-link")
    page.goto(f"{url}/admin/users")
    assert page.locator("#new-link").count() == 0
    row = page.locator("tbody tr", has_text="vera")
    row.locator("form.signout-everywhere button").click()
    page.wait_for_url(f"{url}/admin/users")
    assert "'vera' signed out everywhere" in page.inner_text(".flash")
    shot(page, "sessions-05-signed-out-everywhere")
    assert _me(vera, url) == 401 and _me(admin, url) == 200


def test_home_favicon_and_a_starting_deployment_read_right(site):
    world, url, browser = site
    finished = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    now = datetime.now(UTC)
    with world.hub.sessions() as db:
        db.execute(update(RunRow).where(RunRow.id == world.runs[0]).values(finished_at=finished))
        db.add(
            DeploymentRow(
                id="d0starting", model="sentiment", ref="sentiment:2", version=2, owner="alice",
                status="starting", state={}, message="", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        db.commit()
    _, page = _sign_in(browser, url, "alice")
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(f"{url}/")
    line = page.locator(".activity li", has_text=world.runs[0]).inner_text()
    assert "run run" not in line and f"{world.runs[0]} finished" in line and "2031-05-06 07:08:09 UTC" in line
    shot(page, "sessions-06-home")
    icon = page.request.get(f"{url}/favicon.ico")
    assert icon.status == 200 and icon.body()[:4] == b"\x00\x00\x01\x00"
    page.goto(f"{url}/deployments/d0starting")
    page.click("#try-it button")
    page.wait_for_selector(".try-it-output[data-status='503']", timeout=30_000)
    answer = page.inner_text(".try-it-output")
    assert "not ready" in answer and "internal error" not in answer
    shot(page, "sessions-07-try-it-starting")
    page.goto(f"{url}/models/sentiment/versions/2")
    shot(page, "sessions-08-model-version")
    assert not missing, missing
