"""The Learn list without a notebook server: the tutorials in order, each user's own progress, refusals."""

from __future__ import annotations


def test_the_learn_list_shows_each_users_own_progress(world) -> None:
    alice, bob = world.client("alice"), world.client("bob")
    names = [t["name"] for t in alice.get("/api/v1/notebooks/tutorials").json()]
    assert len(names) == 8 and names[0] == "01-quickstart"
    done = alice.post("/api/v1/notebooks/tutorials/03-kill-and-resume/done")
    assert done.status_code == 200 and done.json()["done_at"]
    mine = {t["name"]: t["done_at"] for t in alice.get("/api/v1/notebooks/tutorials").json()}
    assert mine["03-kill-and-resume"] and not mine["01-quickstart"]
    assert all(t["done_at"] is None for t in bob.get("/api/v1/notebooks/tutorials").json())


def test_an_unknown_tutorial_or_kind_is_refused_with_a_message(world) -> None:
    alice = world.client("alice")
    missing = alice.post("/api/v1/notebooks/tutorials/99-nothing/done")
    assert missing.status_code == 404 and "no tutorial '99-nothing'" in missing.json()["error"]["message"]
    bad = alice.post("/api/v1/notebooks/open", json={"kind": "run", "ref": "x"})
    assert bad.status_code == 422 and "kinds: dataset, model, deployment" in bad.json()["error"]["message"]
    assert alice.post("/api/v1/notebooks/open", json={"kind": "model", "ref": "sentiment"}).status_code == 422


def test_viewers_and_anonymous_visitors_get_no_notebooks(world) -> None:
    refused = world.client("vera").post("/api/v1/notebooks/open", json={"kind": "model", "ref": "sentiment:1"})
    assert refused.status_code == 403 and "viewer cannot use notebooks" in refused.json()["error"]["message"]
    assert world.client().get("/api/v1/notebooks").status_code == 401
    assert world.client().post("/api/v1/notebooks/tutorials/01-quickstart/done").status_code == 401


def test_the_page_tells_a_viewer_why_and_shows_a_member_the_learn_list(world) -> None:
    from fastapi.testclient import TestClient

    from .conftest import PASSWORD

    for user, expected in (("vera", "Viewers get no notebooks"), ("alice", "Open my copy")):
        browser = TestClient(world.app, raise_server_exceptions=False)
        browser.post("/signin", data={"username": user, "password": PASSWORD, "csrf_token": _csrf(browser)})
        page = browser.get("/notebooks")
        assert page.status_code == 200 and expected in page.text, page.text[:500]


def _csrf(browser) -> str:  # type: ignore[no-untyped-def]
    import re

    return re.search(r'name="csrf-token" content="([^"]+)"', browser.get("/signin").text).group(1)
