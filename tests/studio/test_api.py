"""The REST API under /api/v1, on SQLite and PostgreSQL: listings, details, lineage, aliases with audit,
roles and ownership, tokens, and every error as JSON with the right status."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from oar.studio.orm import ApiTokenRow

from .conftest import PASSWORD

pytestmark = pytest.mark.timeout(180)
API = "/api/v1"


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    assert "Traceback" not in response.text
    return body["error"]["message"]


def test_anonymous_visitors_see_only_what_is_public(world):
    anonymous = world.client()
    listing = anonymous.get(f"{API}/models").json()
    assert [m["name"] for m in listing["items"]] == ["digits"]
    assert "no model 'sentiment'" in _error(anonymous.get(f"{API}/models/sentiment"), 404)
    assert "sign in" in _error(anonymous.get(f"{API}/runs"), 401)
    assert anonymous.get(f"{API}/datasets").json()["total"] == 0


def test_model_listing_filters_and_paginates(world):
    member = world.client("alice")

    def names(**params):
        return sorted(m["name"] for m in member.get(f"{API}/models", params=params).json()["items"])

    assert names() == ["digits", "sentiment"]
    assert names(q="senti") == ["sentiment"]
    assert names(tag="vision") == ["digits"]
    assert names(owner="bob") == ["digits"]
    assert names(task="image-classification") == []
    page = member.get(f"{API}/models", params={"limit": 1, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (2, 1, 1, 1)
    assert "limit" in _error(member.get(f"{API}/models", params={"limit": 0}), 422)


def test_a_dataset_version_has_its_card_split_sizes_and_sample_rows(world):
    member = world.client("vera")
    version = member.get(f"{API}/datasets/reviews/versions/1").json()
    assert version["card"]["labels"] == ["neg", "pos"]
    assert version["splits"] == {"train": 48, "valid": 6, "test": 6}
    rows = member.get(f"{API}/datasets/reviews/versions/1/samples", params={"split": "test", "limit": 4}).json()
    assert rows["total"] == 6 and len(rows["items"]) == 4
    assert rows["items"][0]["input"].startswith("review number") and rows["items"][0]["label"] in ("neg", "pos")
    assert _error(member.get(f"{API}/datasets/reviews/versions/1/samples", params={"split": "nope"}), 422)
    assert "version 9" in _error(member.get(f"{API}/datasets/reviews/versions/9"), 404)


def test_a_model_version_has_manifest_metrics_parity_files_and_lineage(world):
    member = world.client("vera")
    version = member.get(f"{API}/models/sentiment/versions/2").json()
    assert version["metrics"] == {"test_accuracy": 0.8}
    assert version["parity"]["passed"] is True
    assert {f["path"] for f in version["files"]} >= {"model.onnx", "manifest.json"}
    assert all(f["size"] > 0 for f in version["files"])
    graph = member.get(f"{API}/models/sentiment/versions/2/lineage").json()
    ids = {n["id"] for n in graph["nodes"]}
    assert {"dataset:reviews:1", f"run:{world.runs[1]}", "model:sentiment:1", "model:sentiment:2"} <= ids
    assert {"from": f"run:{world.runs[1]}", "to": "model:sentiment:2"} in graph["edges"]
    assert {"from": "dataset:reviews:1", "to": f"run:{world.runs[1]}"} in graph["edges"]
    assert {"from": "model:sentiment:1", "to": "model:sentiment:2"} in graph["edges"]
    versions = member.get(f"{API}/models/sentiment/versions").json()
    assert [v["version"] for v in versions["items"]] == [2, 1]


def test_runs_have_config_final_metrics_history_and_compare(world):
    member = world.client("alice")
    run = member.get(f"{API}/runs/{world.runs[0]}").json()
    assert run["config"] == {"lr": 0.1, "epochs": 3} and run["status"] == "finished"
    assert run["metrics"]["test_accuracy"] == pytest.approx(0.7)
    series = member.get(f"{API}/runs/{world.runs[0]}/history").json()["series"]
    assert series["train_loss"]["x"] == [0, 5, 10, 15, 20, 25]
    assert series["valid_accuracy"] == {"x": [29], "y": [pytest.approx(0.7)]}
    compared = member.get(f"{API}/runs/compare", params={"ids": ",".join(world.runs)}).json()
    assert [c["run_id"] for c in compared] == world.runs
    assert "2 to 8" in _error(member.get(f"{API}/runs/compare", params={"ids": world.runs[0]}), 422)
    listing = member.get(f"{API}/runs", params={"status": "finished"}).json()
    assert listing["total"] == 2
    assert "oar runs list" in _error(member.get(f"{API}/runs/nope"), 404)


def test_moving_an_alias_records_who_when_and_from_which_version(world):
    alice = world.client("alice")
    first = alice.put(f"{API}/models/sentiment/aliases/production", json={"version": 1}).json()
    moved = alice.put(f"{API}/models/sentiment/aliases/production", json={"version": 2}).json()
    assert (first["from_version"], first["to_version"], first["actor"]) == (None, 1, "alice")
    assert (moved["from_version"], moved["to_version"]) == (1, 2)
    assert alice.get(f"{API}/models/resolve", params={"ref": "sentiment@production"}).json()["version"] == 2
    history = alice.get(f"{API}/models/sentiment/aliases/history").json()
    assert [(e["from_version"], e["to_version"], e["actor"]) for e in history] == [(1, 2, "alice"), (None, 1, "alice")]
    assert [a["alias"] for a in alice.get(f"{API}/models/sentiment/aliases").json()] == ["production"]
    assert "no version 5" in _error(alice.put(f"{API}/models/sentiment/aliases/production", json={"version": 5}), 404)
    assert _error(alice.put(f"{API}/models/sentiment/aliases/production", json={"version": "two"}), 422)


def test_only_the_owner_or_an_admin_moves_an_alias(world):
    assert "owner" in _error(world.client("bob").put(f"{API}/models/sentiment/aliases/prod", json={"version": 1}), 403)
    assert _error(world.client("vera").put(f"{API}/models/sentiment/aliases/prod", json={"version": 1}), 403)
    assert world.client("admin").put(f"{API}/models/sentiment/aliases/prod", json={"version": 1}).status_code == 200


def test_a_member_cannot_delete_another_members_model(world):
    assert "owner" in _error(world.client("bob").delete(f"{API}/models/sentiment"), 403)
    assert world.client("alice").get(f"{API}/models/sentiment").status_code == 200
    assert world.client("alice").delete(f"{API}/models/sentiment").status_code == 204
    _error(world.client("alice").get(f"{API}/models/sentiment"), 404)


def test_only_an_admin_makes_a_model_public(world):
    assert "admin" in _error(world.client("alice").patch(f"{API}/models/sentiment", json={"visibility": "public"}), 403)
    made = world.client("admin").patch(f"{API}/models/sentiment", json={"visibility": "public"}).json()
    assert made["visibility"] == "public"
    assert world.client().get(f"{API}/models/sentiment").status_code == 200
    assert _error(world.client("admin").patch(f"{API}/models/sentiment", json={"visibility": "world"}), 422)


def test_a_viewer_cannot_deploy(world):
    assert "viewer cannot deploy" in _error(
        world.client("vera").post(f"{API}/deployments", json={"model": "digits:1"}), 403
    )
    assert world.client("vera").get(f"{API}/deployments").json() == []


def test_tokens_are_shown_once_stored_as_argon2_hashes_and_revocable(world):
    alice = world.client("alice")
    made = alice.post(f"{API}/tokens", json={"name": "laptop"})
    assert made.status_code == 201
    token = made.json()["token"]
    listed = alice.get(f"{API}/tokens").json()
    assert token not in str(listed) and "laptop" in {t["name"] for t in listed}
    with world.hub.sessions() as session:
        stored = session.scalar(select(ApiTokenRow.secret_hash).where(ApiTokenRow.id == made.json()["id"]))
    assert stored.startswith("$argon2id$") and token.split("_", 2)[2] not in stored
    with_token = world.client()
    with_token.headers["authorization"] = f"Bearer {token}"
    assert with_token.get(f"{API}/me").json()["username"] == "alice"
    assert alice.delete(f"{API}/tokens/{made.json()['id']}").status_code == 204
    assert "revoked" in _error(with_token.get(f"{API}/me"), 401)


def test_users_are_managed_by_admins_only(world):
    admin = world.client("admin")
    created = admin.post(f"{API}/users", json={"username": "carol", "role": "viewer", "password": PASSWORD})
    assert created.status_code == 201 and created.json()["role"] == "viewer"
    assert "already exists" in _error(admin.post(f"{API}/users", json={"username": "carol"}), 409)
    assert _error(admin.post(f"{API}/users", json={"username": "Bad Name"}), 422)
    assert _error(world.client("alice").get(f"{API}/users"), 403)
    changed = admin.patch(f"{API}/users/{created.json()['id']}", json={"role": "member"}).json()
    assert changed["role"] == "member"


def test_password_sign_in_gives_a_token_and_is_rate_limited(world):
    client = world.client()
    made = client.post(f"{API}/auth/token", json={"username": "bob", "password": PASSWORD})
    assert made.status_code == 201 and made.json()["token"].startswith("oar_")
    for _ in range(3):
        _error(client.post(f"{API}/auth/token", json={"username": "bob", "password": "wrong password"}), 401)
    limited = client.post(f"{API}/auth/token", json={"username": "bob", "password": PASSWORD})
    assert "too many" in _error(limited, 429) and limited.headers["retry-after"]


def test_bad_requests_are_json_errors_with_the_right_status(world):
    member = world.client("alice")
    assert "bad model" in _error(member.get(f"{API}/models/resolve", params={"ref": "x@"}), 422)
    assert _error(member.get(f"{API}/models/sentiment/versions/abc"), 422)
    assert _error(
        member.put(
            f"{API}/models/sentiment/aliases/p", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
    )
    assert _error(member.get(f"{API}/nothing/here"), 404)
    assert _error(member.delete(f"{API}/models"), 405)
    bad = world.client()
    bad.headers["authorization"] = "Bearer oar_000000000000_forged"
    assert "unknown" in _error(bad.get(f"{API}/models"), 401)
    bad.headers["authorization"] = "Basic abc"
    assert "Bearer" in _error(bad.get(f"{API}/models"), 401)


def test_writes_riding_on_the_session_cookie_need_the_csrf_header(world):
    client = world.client()
    page = client.get("/signin")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    signed_in = client.post(
        "/signin", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf}, follow_redirects=False
    )
    assert signed_in.status_code == 303
    assert client.get(f"{API}/me").json()["username"] == "alice"
    assert "CSRF" in _error(client.put(f"{API}/models/sentiment/aliases/p", json={"version": 1}), 403)
    fresh = client.get("/").text.split('name="csrf-token" content="')[1].split('"')[0]
    ok = client.put(f"{API}/models/sentiment/aliases/p", json={"version": 1}, headers={"x-csrf-token": fresh})
    assert ok.status_code == 200


def test_the_openapi_document_lists_every_resource(world):
    paths = world.client().get(f"{API}/openapi.json").json()["paths"]
    for path in (
        "/api/v1/datasets",
        "/api/v1/models",
        "/api/v1/runs",
        "/api/v1/deployments",
        "/api/v1/users",
        "/api/v1/tokens",
        "/api/v1/models/{name}/aliases/{alias}",
    ):
        assert path in paths
    assert not any(p.startswith("/models") for p in paths)  # pages stay out of the API document
