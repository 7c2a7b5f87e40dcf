"""The Jobs pages: the queue (filter by state), a job's placement history, events, cost and log tail, the
Cancel button for those allowed; on SQLite and PostgreSQL, then in headless Chromium with a real job.

Screenshots of the browser walk land in test-artifacts/studio/ (jobs-*.png).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .browser import chromium, serving, shot
from .conftest import PASSWORD, build_world
from .jobs_data import record_queue, run_real_job

pytestmark = pytest.mark.timeout(180)


@pytest.fixture()
def queue(world):
    return record_queue(world.hub, world.runs[0])


def _rows(html: str, table: str) -> list[str]:
    body = html.split(f'id="{table}"')[1].split("</table>")[0]
    return re.findall(r"<tr data-[a-z]+=\"[^\"]+\">.*?</tr>", body, re.S)


def test_the_queue_page_lists_jobs_and_filters_by_state(world, queue):
    member = world.client("alice")
    page = member.get("/jobs")
    assert page.status_code == 200 and '<a href="/jobs">Jobs</a>' in page.text
    rows = _rows(page.text, "queue")
    assert [re.search(r'data-job="(\w+)"', r).group(1) for r in rows] == [
        queue.waiting_bob,
        queue.waiting_alice,
        queue.running,
        queue.spot,
    ]
    spot = rows[3]
    assert "digits-spot" in spot and "on-demand" in spot and "(asked spot)" in spot and "$0.0325" in spot
    assert '<a href="/jobs?owner=alice">alice</a>' in spot and "succeeded" in spot
    assert "1–2 × 1 CPU" in rows[2] and "$0.0025" in rows[2]  # five minutes on spot so far
    assert rows[1].endswith('<td class="num">-</td></tr>')  # not placed yet: no cost
    queued = member.get("/jobs", params={"state": "queued"}).text
    assert len(_rows(queued, "queue")) == 2 and 'class="active">queued</a>' in queued
    assert len(_rows(member.get("/jobs", params={"owner": "bob"}).text, "queue")) == 2
    assert "no jobs preempted" in member.get("/jobs", params={"state": "preempted"}).text
    assert member.get("/jobs", params={"state": "done"}).status_code == 422


def test_a_job_page_has_its_placement_history_events_cost_and_log(world, queue):
    html = world.client("vera").get(f"/jobs/{queue.spot}").text
    placements = _rows(html, "placements")
    assert len(placements) == 3
    assert "spot-a1f3c2" in placements[0] and "preempted" in placements[0] and ">75<" in placements[0]
    assert "spot-b72e90" in placements[1] and "killed" in placements[1] and "(2 redone)" in placements[1]
    assert "on-demand-c4d1aa" in placements[2] and "succeeded" in placements[2] and "15m 00s" in placements[2]
    cost = html.split('id="cost"')[1].split("</section>")[0]
    assert "$0.0325" in cost and "on spot" in cost and "$0.007500" in cost and "on on-demand" in cost
    assert "$0.0250" in cost and "30m 00s" in cost  # node time
    running = _rows(world.client("vera").get(f"/jobs/{queue.running}").text, "placements")[0]
    assert re.search(r">5m 0\ds<", running) and "$0.0025" in running  # a running attempt counts up to now
    events = html.split('id="events"')[1].split("</section>")[0]
    assert events.count('class="tag preempted"') == 2 and "moved to on-demand: preempted 2 times" in events
    assert '<pre id="log-tail">--- attempt 1 on spot-a1f3c2' in html
    assert f'<a href="/runs/{world.runs[0]}" id="job-run">' in html
    assert "cancel-form" not in html  # it is over


def test_the_cancel_button_is_there_for_the_owner_and_admins_only(world, queue):
    path = f"/jobs/{queue.waiting_alice}"
    assert "cancel-form" in world.client("alice").get(path).text
    assert "cancel-form" in world.client("admin").get(path).text
    assert "cancel-form" not in world.client("bob").get(path).text
    viewer = world.client("vera").get(path).text
    assert "cancel-form" not in viewer and "Viewers cannot cancel jobs." in viewer


def test_cancelling_from_the_page_needs_the_form_token(world, queue):
    member = world.client("alice")
    path = f"/jobs/{queue.waiting_alice}"
    csrf = member.get(path).text.split('name="csrf-token" content="')[1].split('"')[0]
    forged = member.post(f"{path}/cancel", data={"csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403 and "CSRF" in forged.text
    done = member.post(f"{path}/cancel", data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == path
    page = member.get(path).text
    assert f"job {queue.waiting_alice} cancelled" in page and 'id="job-state">cancelled' in page
    bob = world.client("bob")
    token = bob.get(path).text.split('name="csrf-token" content="')[1].split('"')[0]
    requested = bob.post(f"/jobs/{queue.running}/cancel", data={"csrf_token": token})
    assert requested.status_code == 200  # bob's own running job: a cancel request, then back to its page
    assert "cancel requested" in bob.get(f"/jobs/{queue.running}").text
    assert "owner" in bob.post(f"/jobs/{queue.spot}/cancel", data={"csrf_token": token}).text


def test_missing_jobs_and_anonymous_visitors(world, queue):
    assert world.client("alice").get("/jobs/nope").status_code == 404
    anonymous = world.client().get("/jobs", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")


# --- in a real browser, with a real job ---------------------------------------------------------------------------


@pytest.fixture()
def site(tmp_path: Path, numeric_package: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    world = build_world(f"sqlite:///{home / 'hub.db'}", home, numeric_package)
    real = run_real_job(world, tmp_path, monkeypatch)  # before the recorded queue, which no scheduler should touch
    queue = record_queue(world.hub, world.runs[0])
    with serving(world.app) as url, chromium() as browser:
        yield world, url, browser, real, queue
    world.app.state.services.close()


def _sign_in(page, url: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/signin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_url(f"{url}/")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_member_follows_jobs_from_the_queue_to_their_placements_cost_and_run_and_a_viewer_cannot_cancel(site):
    _, url, browser, real, queue = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, url, "alice")

    page.click("nav >> text=Jobs")
    page.wait_for_url(f"{url}/jobs")
    assert page.locator("#queue tbody tr[data-job]").count() == 5
    shot(page, "jobs-01-queue")

    page.click("#state-filter >> text=succeeded")
    page.wait_for_url(f"{url}/jobs?state=succeeded")
    assert page.locator("#queue tbody tr[data-job]").count() == 2
    shot(page, "jobs-02-queue-succeeded")

    page.click(f"#queue a[href='/jobs/{queue.spot}']")
    page.wait_for_url(f"{url}/jobs/{queue.spot}")
    placements = page.locator("#placements tbody tr")
    assert placements.count() == 3
    assert "preempted" in placements.nth(0).inner_text() and "killed" in placements.nth(1).inner_text()
    assert "on-demand-c4d1aa" in placements.nth(2).inner_text()
    cost = page.inner_text("#cost")
    assert "$0.0325" in cost and "on spot" in cost and "on on-demand" in cost
    assert page.locator("#events tbody tr").count() == 12
    shot(page, "jobs-03-spot-job-placements-and-cost")

    page.goto(f"{url}/jobs/{real}")
    (row,) = page.locator("#placements tbody tr").all()
    assert "succeeded" in row.inner_text() and "on-demand-" in row.inner_text()
    assert page.inner_text("#log-tail").startswith("--- attempt 1 on on-demand")
    assert "on on-demand" in page.inner_text("#cost")
    shot(page, "jobs-04-real-job")
    run_id = page.inner_text("#job-run")
    page.click("#job-run")
    page.wait_for_url(f"{url}/runs/{run_id}")
    assert "finished" in page.inner_text("h1")

    page.goto(f"{url}/jobs/{queue.waiting_alice}")
    with page.expect_navigation():
        page.click("#cancel-form button")
    assert "cancelled" in page.inner_text(".flash") and page.inner_text("#job-state") == "cancelled"
    assert page.locator("#cancel-form").count() == 0
    shot(page, "jobs-05-cancelled")
    assert errors == []

    viewer = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    _sign_in(viewer, url, "vera")
    viewer.goto(f"{url}/jobs/{queue.running}")
    assert viewer.locator("#cancel-form").count() == 0
    assert "Viewers cannot cancel jobs." in viewer.inner_text("main")
    assert "spot-d9e011" in viewer.inner_text("#placements")
    shot(viewer, "jobs-06-viewer-running-job")
