"""Browser sessions live on the server, on SQLite and PostgreSQL: the cookie holds only a random id, so
signing out, a password change, disabling a user and an admin's "sign out everywhere" end every copy of it;
expired sessions are refused and deleted; secrets shown once never ride in a cookie."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from oar.studio.orm import SessionRow, UserRow

from .conftest import PASSWORD

pytestmark = pytest.mark.timeout(180)
API = "/api/v1"


def _csrf(html: str) -> str:
    return html.split('name="csrf-token" content="')[1].split('"')[0]


def _signed_in(world, username: str):  # type: ignore[no-untyped-def]
    client = world.client()
    csrf = _csrf(client.get("/signin").text)
    answer = client.post(
        "/signin", data={"username": username, "password": PASSWORD, "csrf_token": csrf}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return client


def _copy(world, client):  # type: ignore[no-untyped-def]
    """Another browser holding a stolen copy of ``client``'s session cookie."""
    thief = world.client()
    thief.cookies.set("oar_session", client.cookies["oar_session"])
    assert thief.get(f"{API}/me").status_code == 200
    return thief


def _post_form(client, path: str, **fields: str):  # type: ignore[no-untyped-def]
    csrf = _csrf(client.get("/").text)
    return client.post(path, data={"csrf_token": csrf, **fields}, follow_redirects=False)


def _rows(world, user: str | None = None) -> int:
    with world.hub.sessions() as db:
        query = select(func.count()).select_from(SessionRow)
        if user:
            query = query.join(UserRow, UserRow.id == SessionRow.user_id).where(UserRow.username == user)
        return db.scalar(query)


def _decoded_cookies(response) -> str:  # type: ignore[no-untyped-def]
    """Every Set-Cookie of a response, with each base64-looking part decoded as an attacker would."""
    out = []
    for header in response.headers.get_list("set-cookie"):
        out.append(header)
        for part in header.split(";")[0].split("=", 1)[-1].split("."):
            for padded in (part, part + "=", part + "=="):
                try:
                    out.append(base64.urlsafe_b64decode(padded).decode("utf-8", "replace"))
                    out.append(base64.b64decode(padded).decode("utf-8", "replace"))
                except (binascii.Error, ValueError):
                    pass
    return "\n".join(out)


def test_the_cookie_holds_only_a_random_id_and_the_table_only_its_hash(world):
    alice = _signed_in(world, "alice")
    cookie = alice.cookies["oar_session"]
    assert cookie.startswith("s.") and len(cookie) == 45
    with world.hub.sessions() as db:
        stored = db.scalars(select(SessionRow.id_hash)).all()
    assert stored == [hashlib.sha256(cookie[2:].encode()).hexdigest()]
    assert "uid" not in _decoded_cookies(alice.get("/"))


def test_a_copied_cookie_stops_working_after_sign_out(world):
    alice = _signed_in(world, "alice")
    thief = _copy(world, alice)
    assert _post_form(alice, "/signout").status_code == 303
    assert thief.get(f"{API}/me").status_code == 401
    assert thief.get("/account/tokens", follow_redirects=False).status_code == 303  # to the sign-in page
    assert _rows(world) == 0


def test_a_password_change_needs_the_current_password_and_ends_every_other_session(world):
    alice = _signed_in(world, "alice")
    thief = _copy(world, alice)
    assert 'name="current"' in alice.get("/account/password").text
    new = {"password": "a new secret", "confirm": "a new secret"}
    wrong = _post_form(alice, "/account/password", current="not it at all", **new)
    assert wrong.status_code == 422 and "current password is wrong" in wrong.text
    assert thief.get(f"{API}/me").status_code == 200  # nothing changed yet
    changed = _post_form(alice, "/account/password", current=PASSWORD, **new)
    assert changed.status_code == 303
    assert thief.get(f"{API}/me").status_code == 401
    assert alice.get(f"{API}/me").json()["username"] == "alice"  # this browser got a fresh session
    assert _rows(world, "alice") == 1


def test_disabling_a_user_and_sign_out_everywhere_end_every_copy(world):
    alice, bob = _signed_in(world, "alice"), _signed_in(world, "bob")
    alice_copy, bob_copy = _copy(world, alice), _copy(world, bob)
    admin = world.client("admin")
    users = {u["username"]: u["id"] for u in admin.get(f"{API}/users").json()}
    assert admin.delete(f"{API}/users/{users['alice']}/sessions").json() == {"ended": 1}
    assert alice_copy.get(f"{API}/me").status_code == 401 and alice.get(f"{API}/me").status_code == 401
    assert admin.patch(f"{API}/users/{users['bob']}", json={"disabled": True}).status_code == 200
    assert admin.patch(f"{API}/users/{users['bob']}", json={"disabled": False}).status_code == 200
    assert bob_copy.get(f"{API}/me").status_code == 401  # enabled again, but the old session stays ended
    assert _rows(world) == 0


def test_an_admin_signs_a_user_out_everywhere_from_the_users_page(world):
    alice = _signed_in(world, "alice")
    admin = _signed_in(world, "admin")
    alice_id = next(u["id"] for u in world.client("admin").get(f"{API}/users").json() if u["username"] == "alice")
    answer = _post_form(admin, f"/admin/users/{alice_id}/signout")
    assert answer.status_code == 303
    assert "signed out everywhere (1 session ended)" in admin.get("/admin/users").text
    assert alice.get(f"{API}/me").status_code == 401
    assert admin.get(f"{API}/me").status_code == 200


def test_an_expired_session_is_refused_and_deleted(world):
    alice = _signed_in(world, "alice")
    _signed_in(world, "bob")  # a browser that never comes back
    with world.hub.sessions() as db:
        db.execute(update(SessionRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.commit()
    assert alice.get(f"{API}/me").status_code == 401
    assert _rows(world, "alice") == 0 and _rows(world, "bob") == 1
    _signed_in(world, "vera")  # every new session sweeps the expired ones
    assert _rows(world, "bob") == 0 and _rows(world) == 1


def test_a_session_cookie_that_was_never_issued_signs_nobody_in(world):
    forged = world.client()
    forged.cookies.set("oar_session", "s." + "A" * 43)
    assert forged.get(f"{API}/me").status_code == 401


def test_a_new_token_is_shown_in_its_response_and_never_in_a_cookie(world):
    alice = _signed_in(world, "alice")
    made = _post_form(alice, "/account/tokens", name="laptop")
    assert made.status_code == 201
    token = made.text.split('id="new-token">')[1].split("<code>")[1].split("</code>")[0]
    assert token.startswith("oar_")
    assert token not in _decoded_cookies(made)
    after = alice.get("/account/tokens")
    assert token not in after.text and token not in _decoded_cookies(after)  # shown once
    with world.hub.sessions() as db:
        assert all(token not in str(data) for data in db.scalars(select(SessionRow.data)))


def test_a_new_users_sign_in_link_is_shown_in_its_response_and_never_in_a_cookie(world):
    admin = _signed_in(world, "admin")
    made = _post_form(admin, "/admin/users", username="carol", role="member")
    assert made.status_code == 201
    link = made.text.split('id="new-link">')[1].split("<code>")[1].split("</code>")[0]
    token = link.rsplit("/", 1)[1]
    assert "/signin/link/oar_" in link and token not in _decoded_cookies(made)
    assert token not in admin.get("/admin/users").text
    carol = world.client()
    path = "/signin/link/" + token
    assert carol.get(path, follow_redirects=False).status_code == 303
    assert carol.get(f"{API}/me").json()["username"] == "carol"


def test_an_anonymous_cookie_carries_only_a_csrf_token(world):
    visitor = world.client()
    page = visitor.get("/signin")
    decoded = _decoded_cookies(page)
    assert '"csrf"' in decoded and "uid" not in decoded
    with world.hub.sessions() as db:
        assert db.scalar(select(func.count()).select_from(SessionRow)) == 0  # no row per visitor
