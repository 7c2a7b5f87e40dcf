"""The competition room through the studio's API and pages: creating (admins only), the hidden inputs,
predictions files checked line by line, scoring as jobs, quotas, and no private score before the end.

Alice's predictions are right on the public rows only, Bob's on the private rows only: the public board
ranks Alice first and the private one Bob, so any leak of private scores, through a value, an order, an
export or an error, shows up as Bob ahead before the end.
"""

from __future__ import annotations

import json

import pytest

from oar.competitions import hidden
from studio.conftest import PASSWORD, USERS, studio_config

from .conftest import TEST_ROWS, spec_dict, wait_scored


@pytest.fixture(scope="module")
def studio(hub, home):
    from fastapi.testclient import TestClient

    from oar.studio.app import create_app

    app = create_app(studio_config(home, f"sqlite:///{home / 'hub.db'}"), hub)
    accounts = app.state.services.accounts
    tokens = {
        name: accounts.issue_token(accounts.create_user(name, role, PASSWORD).id, "t") for name, role in USERS.items()
    }

    def client(user: str | None = None) -> TestClient:
        headers = {"authorization": f"Bearer {tokens[user]}"} if user else {}
        return TestClient(app, headers=headers, raise_server_exceptions=False)

    return app, client


def _csv(rows: dict[str, int]) -> bytes:
    return ("id,prediction\n" + "".join(f"{i},{v}\n" for i, v in rows.items())).encode()


def _designed(home, right_on_public: bool) -> dict[str, int]:
    """Right labels on one side of the split, wrong ones on the other."""
    truth = hidden.load_hidden(home, "digits-cup")
    out = {}
    for i, label, public in zip(truth.ids, truth.labels.tolist(), truth.public.tolist(), strict=True):
        out[i] = label if public == right_on_public else (label + 1) % 10
    return out


def test_members_cannot_create_and_bad_files_are_refused_one_problem_a_line(studio, home):
    _, client = studio
    assert client("alice").post("/api/v1/competitions", json=spec_dict()).status_code == 403
    bad = client("admin").post("/api/v1/competitions", json=spec_dict(public_fraction=2, metric="mse", extra=1))
    assert bad.status_code == 422, bad.text
    message = bad.json()["error"]["message"]
    assert "public_fraction" in message and "unknown metric 'mse'" in message and "extra: unknown key" in message
    assert "Traceback" not in message
    created = client("admin").post("/api/v1/competitions", json=spec_dict())
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["test_size"] == TEST_ROWS and body["public_size"] == TEST_ROWS // 2 and body["open"]
    assert client("admin").post("/api/v1/competitions", json=spec_dict()).status_code == 409
    inputs = client("bob").get("/api/v1/competitions/digits-cup/inputs")
    rows = [json.loads(line) for line in inputs.text.splitlines()]
    assert len(rows) == TEST_ROWS and set(rows[0]) == {"id", "x"}  # no label, no split
    labels = home / "competitions" / "digits-cup" / "hidden" / "labels.json"
    assert labels.stat().st_mode & 0o077 == 0 and labels.parent.stat().st_mode & 0o077 == 0


def test_a_bad_predictions_file_gets_per_line_errors_and_costs_no_quota(studio, home, numeric_package):
    _, client = studio
    ids = list(_designed(home, True))
    body = f"id,prediction\n{ids[0]},3\n{ids[0]},4\nnope,1\n{ids[1]},banana\n".encode()
    response = client("alice").post("/api/v1/competitions/digits-cup/submissions", files={"file": ("p.csv", body)})
    assert response.status_code == 422
    lines = response.json()["error"]["message"].splitlines()
    assert lines[1:4] == [
        f"line 3: id '{ids[0]}' repeated (first on line 2)",
        "line 4: unknown id 'nope'",
        "line 5: prediction 'banana' is not a label (0, 1, 2, 3, 4, 5, 6, 7, 8, 9) or its index 0-9",
    ]
    assert lines[4].startswith(f"{TEST_ROWS - 2} of {TEST_ROWS} ids missing")
    jsonl = b'{"id": "t00000", "prediction": 1}\n{oops\n'
    response = client("alice").post("/api/v1/competitions/digits-cup/submissions", files={"file": ("p.jsonl", jsonl)})
    assert response.status_code == 422 and response.json()["error"]["message"].startswith("line 2: not JSON")
    hub = studio[0].state.services.hub
    hub.register_model(numeric_package, "head", "bob")  # a generic model, and Bob's
    theirs = client("alice").post("/api/v1/competitions/digits-cup/submissions", json={"model": "head:1"})
    assert theirs.status_code == 403 and "belongs to bob" in theirs.json()["error"]["message"]
    wrong = client("bob").post("/api/v1/competitions/digits-cup/submissions", json={"model": "head:1"})
    assert wrong.status_code == 422
    assert "is a generic package; this competition is image-classification" in wrong.json()["error"]["message"]
    wrong_task = client("alice").post("/api/v1/competitions/digits-cup/submissions", json={"model": "nothing:3"})
    assert wrong_task.status_code == 422 and "no model 'nothing:3'" in wrong_task.json()["error"]["message"]
    unknown_run = client("alice").post("/api/v1/competitions/digits-cup/submissions", json={"reproduce": "nope"})
    assert unknown_run.status_code == 422 and "no run 'nope'" in unknown_run.json()["error"]["message"]
    neither = client("alice").post("/api/v1/competitions/digits-cup/submissions", json={})
    assert neither.status_code == 422 and '{"reproduce": "RUN"}' in neither.json()["error"]["message"]
    assert client("alice").get("/api/v1/competitions/digits-cup/quota").json()["total_left"] == 5
    assert client("alice").get("/api/v1/competitions/digits-cup/submissions").json() == []
    assert client("vera").post("/api/v1/competitions/digits-cup/submissions", json={"model": "x"}).status_code == 403


def test_boards_hide_every_private_score_until_the_end(studio, home):
    _, client = studio
    submitted = {}
    for user, right_on_public in (("alice", True), ("bob", False)):
        files = {"file": ("p.csv", _csv(_designed(home, right_on_public)))}
        response = client(user).post("/api/v1/competitions/digits-cup/submissions", files=files)
        assert response.status_code == 202, response.text
        body = response.json()  # a file under a built-in metric is scored as it arrives, with no job
        assert body["status"] == "scored" and body["details"] == {"scored": "at submission"}, body
        assert body["private_score"] is None
        submitted[user] = body["id"]
    core = studio[0].state.services.competitions.core
    for user, submission_id in submitted.items():
        assert wait_scored(core, submission_id).status == "scored", user
    # what a participant can reach before the end: nothing with a private score, nothing ordered by it
    before = {
        "board": client("bob").get("/api/v1/competitions/digits-cup/leaderboard"),
        "csv": client("bob").get("/api/v1/competitions/digits-cup/leaderboard.csv"),
        "mine": client("bob").get("/api/v1/competitions/digits-cup/submissions"),
        "competition": client("bob").get("/api/v1/competitions/digits-cup"),
        "page": client("bob").get("/competitions/digits-cup"),
        "list": client("bob").get("/competitions"),
        "private": client("bob").get("/api/v1/competitions/digits-cup/leaderboard?board=private"),
        "private-csv": client("bob").get("/api/v1/competitions/digits-cup/leaderboard.csv?board=private"),
        "scores": client("bob").get("/api/v1/competitions/digits-cup/scores"),
        "rescore": client("bob").post("/api/v1/competitions/digits-cup/rescore"),
        "edit": client("bob").patch("/api/v1/competitions/digits-cup", json={"title": "mine now"}),
        "organize": client("bob").put("/api/v1/competitions/digits-cup/organizers", json={"users": ["bob"]}),
        "edit-page": client("bob").post("/competitions/digits-cup/rescore"),
    }
    for name in ("scores", "rescore", "edit", "organize"):
        assert before[name].status_code == 403, name
    assert before["private"].status_code == 403 and before["private-csv"].status_code == 403
    assert "revealed at the end" in before["private"].json()["error"]["message"]
    board = before["board"].json()
    assert [e["user"] for e in board] == ["alice", "bob"]
    assert board[0]["score"] == 1.0 and board[1]["score"] == 0.0
    assert before["mine"].json()[0]["private_score"] is None
    bob_private = core.store.submission(submitted["bob"]).private_score
    assert bob_private == 1.0
    for name, response in before.items():
        text = response.text
        assert 'private_score":1' not in text and 'private_score": 1' not in text, name
        assert "private score" not in text.lower() or name in ("private", "private-csv", "scores"), name
    assert before["csv"].text.splitlines()[1].startswith("1,alice,1.000000")
    _organizer_sees_private_scores_and_cannot_play(studio, core, submitted)
    # the end passes: the private board appears, Bob first
    assert client("alice").post("/api/v1/competitions/digits-cup/close").status_code == 403
    assert client("admin").post("/api/v1/competitions/digits-cup/close").json()["ended"] is True
    private = client("alice").get("/api/v1/competitions/digits-cup/leaderboard?board=private").json()
    assert [(e["user"], e["score"]) for e in private] == [("bob", 1.0), ("alice", 0.0)]
    assert client("bob").get("/api/v1/competitions/digits-cup/submissions").json()[0]["private_score"] == 1.0
    page = client("bob").get("/competitions/digits-cup").text
    assert 'id="private-board"' in page
    late = client("bob").post(
        "/api/v1/competitions/digits-cup/submissions", files={"file": ("p.csv", b"id,prediction\n")}
    )
    assert late.status_code == 403 and "has ended" in late.json()["error"]["message"]


def _organizer_sees_private_scores_and_cannot_play(studio, core, submitted) -> None:
    """Carol, a member the creator made an organizer: she follows the private board live, sees every score,
    edits the competition and re-scores it, and cannot submit; Bob, who took part, cannot be made one."""
    from fastapi.testclient import TestClient

    app, client = studio
    accounts = app.state.services.accounts
    carol = TestClient(app, headers={"authorization": f"Bearer {_token(accounts, 'carol')}"})
    base = "/api/v1/competitions/digits-cup"
    assert carol.get(f"{base}/leaderboard?board=private").status_code == 403  # not an organizer yet
    taken = client("admin").put(f"{base}/organizers", json={"users": ["carol", "bob"]})
    assert taken.status_code == 409 and "bob took part" in taken.json()["error"]["message"]
    assert client("admin").put(f"{base}/organizers", json={"users": ["nobody-here"]}).status_code == 422
    made = client("admin").put(f"{base}/organizers", json={"users": ["carol"]})
    assert made.status_code == 200 and made.json()["organizers"] == ["admin", "carol"]
    assert carol.put(f"{base}/organizers", json={"users": ["carol", "vera"]}).status_code == 403  # creator's call

    private = carol.get(f"{base}/leaderboard?board=private").json()
    assert [(e["user"], e["score"]) for e in private] == [("bob", 1.0), ("alice", 0.0)]
    assert carol.get(f"{base}/leaderboard.csv?board=private").text.splitlines()[1].startswith("1,bob,1.000000")
    every = {s["user"]: s["private_score"] for s in carol.get(f"{base}/scores").json()}
    assert every == {"alice": 0.0, "bob": 1.0}
    page = carol.get("/competitions/digits-cup").text
    assert 'id="private-board"' in page and 'id="every-submission"' in page and 'id="submit-form"' not in page
    refused = carol.post(f"{base}/submissions", files={"file": ("p.csv", b"id,prediction\n")})
    assert refused.status_code == 403 and "organizers see private scores" in refused.json()["error"]["message"]

    edited = carol.patch(base, json={"title": "Digits cup, round 1", "limits": {"daily": 4, "total": 6}})
    assert edited.status_code == 200 and edited.json()["title"] == "Digits cup, round 1"
    assert edited.json()["limits"]["daily"] == 4 and edited.json()["test_size"] == TEST_ROWS
    bad = carol.patch(base, json={"seed": 9, "limits": {"daily": 0}})
    assert bad.status_code == 422 and "seed: cannot be changed" in bad.json()["error"]["message"]
    assert "daily" in carol.patch(base, json={"limits": {"daily": 0}}).json()["error"]["message"]

    again = carol.post(f"{base}/rescore")
    assert again.status_code == 200 and {s["id"] for s in again.json()} == set(submitted.values())
    for submission_id in submitted.values():
        assert wait_scored(core, submission_id).status == "scored"
    assert core.store.submission(submitted["bob"]).private_score == 1.0
    for user in ("alice", "bob"):  # still nothing private for the participants
        mine = client(user).get(f"{base}/submissions").json()
        assert all(s["private_score"] is None for s in mine)
        assert client(user).get(f"{base}/leaderboard?board=private").status_code == 403
        page = client(user).get("/competitions/digits-cup").text
        assert 'id="private-board"' not in page and 'id="every-submission"' not in page and "private score" not in page


def _token(accounts, name: str) -> str:
    return accounts.issue_token(accounts.create_user(name, "member", PASSWORD).id, "t")


def test_a_member_granted_the_organizer_role_creates_competitions_and_a_viewer_cannot(studio):
    from fastapi.testclient import TestClient

    app, client = studio
    accounts = app.state.services.accounts
    olga = accounts.create_user("olga", "member", PASSWORD)
    as_olga = TestClient(app, headers={"authorization": f"Bearer {accounts.issue_token(olga.id, 't')}"})
    refused = as_olga.post("/api/v1/competitions", json=spec_dict("olga-cup"))
    assert refused.status_code == 403 and "organizer role" in refused.json()["error"]["message"]
    assert client("vera").post("/api/v1/competitions", json=spec_dict("vera-cup")).status_code == 403
    granted = client("admin").patch(f"/api/v1/users/{olga.id}", json={"role": "organizer"})
    assert granted.status_code == 200 and granted.json()["role"] == "organizer", granted.text
    created = as_olga.post("/api/v1/competitions", json=spec_dict("olga-cup"))
    assert created.status_code == 201, created.text
    assert as_olga.get("/api/v1/competitions/olga-cup/scores").status_code == 200  # its creator organizes it
    assert client("alice").get("/api/v1/competitions/olga-cup/scores").status_code == 403
