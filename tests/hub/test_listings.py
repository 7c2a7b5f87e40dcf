"""Listings built for a large catalog, on SQLite and PostgreSQL: cursor pages, the name index, kept totals."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from oar._core.errors import InvalidInputError
from oar.hub import Hub, name_search
from oar.hub.orm import ModelRow, ModelTagRow, RegisteredModelRow

pytestmark = pytest.mark.timeout(120)

TASKS = ("text-classification", "image-classification")


@pytest.fixture()
def hub(database_url, tmp_path):
    hub = Hub(home=tmp_path / "home", url=database_url)
    yield hub
    hub.close()


def _register(hub: Hub, name: str, version: int = 1, task: str = TASKS[0], owner: str | None = None) -> None:
    row = ModelRow(
        name=name, version=version, digest=f"sha256:{name}{version}", task=task, run_id=None, parent=None, manifest={}
    )
    assert hub.models.insert(row, owner=owner) is not None


def _bulk(hub: Hub, names: list[str], same_time: bool = False) -> None:
    """Catalog rows straight into the tables (as a bulk import would): the counters and the name index
    are kept by the database itself, not by the store."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "name": n,
            "owner": ("alice", "bob", None)[i % 3],
            "visibility": ("private", "public")[i % 2],
            "description": "",
            "task": TASKS[i % 2],
            "latest_version": 1,
            "created_at": start,
            "updated_at": start if same_time else start + timedelta(seconds=i),
        }
        for i, n in enumerate(names)
    ]
    with hub.engine.begin() as connection:
        connection.execute(sa.insert(RegisteredModelRow), rows)
        connection.execute(sa.insert(ModelTagRow), [{"name": n, "tag": "even"} for n in names[::2]])


def _walk(hub: Hub, limit: int, between_pages=lambda page_no: None, **filters) -> list[str]:
    seen, cursor, page_no = [], None, 0
    while True:
        page = hub.model_catalog.search(limit=limit, cursor=cursor, **filters)
        seen += [m.name for m in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
        page_no += 1
        between_pages(page_no)


@pytest.mark.parametrize("same_time", [False, True], ids=["distinct-times", "one-timestamp"])
def test_cursor_pages_neither_skip_nor_repeat_while_models_are_registered(hub, same_time):
    names = [f"m-{i:03d}" for i in range(57)]
    _bulk(hub, names, same_time=same_time)
    added = []

    def register_more(page_no: int) -> None:  # new models land before the cursor: the walk goes on unchanged
        for j in range(3):
            added.append(f"new-{page_no}-{j}")
            _register(hub, added[-1])

    seen = _walk(hub, 10, register_more)
    assert len(seen) == len(set(seen)) == len(names)
    assert seen == [m.name for m in hub.model_catalog.search(limit=200).items if m.name in set(names)]
    assert not set(added) & set(seen) and added  # registered after the walk began: on the first page next time
    assert {m.name for m in hub.model_catalog.search(limit=len(added)).items} == set(added)


def test_cursor_pages_with_a_filter_match_the_offset_pages(hub):
    _bulk(hub, [f"m-{i:03d}" for i in range(40)])
    by_cursor = _walk(hub, 7, task=TASKS[1])
    by_offset = [m.name for m in hub.model_catalog.search(limit=200, task=TASKS[1]).items]
    assert by_cursor == by_offset and len(by_offset) == 20


def test_cursor_pages_of_one_models_versions_survive_new_versions(hub):
    for version in range(1, 24):
        _register(hub, "m", version)
    seen, cursor = [], None
    while True:
        page = hub.models.versions("m", limit=5, cursor=cursor)
        seen += [v.version for v in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        _register(hub, "m", hub.models.next_version("m"))  # a new version while paging
    assert seen == list(range(23, 0, -1))
    assert hub.models.versions("m", limit=1).total == 23 + 4


@pytest.mark.parametrize("cursor", ["garbage!", "W10", "WyJ4Il0", "eyJ0IjoxfQ"])
def test_a_bad_cursor_is_a_clear_error(hub, cursor):
    _bulk(hub, ["a", "b"])
    with pytest.raises(InvalidInputError, match="bad cursor"):
        hub.model_catalog.search(cursor=cursor)
    with pytest.raises(InvalidInputError, match="bad cursor"):
        hub.models.versions("a", cursor=cursor)
    with pytest.raises(InvalidInputError, match="not both"):
        hub.model_catalog.search(cursor=hub.model_catalog.search(limit=1).next_cursor, offset=1)


@pytest.mark.parametrize("window", [name_search.WINDOW, 3], ids=["newest-first", "through-the-index"])
def test_name_search_finds_exactly_what_a_scan_finds(hub, window, monkeypatch):
    monkeypatch.setattr(name_search, "WINDOW", window)  # a small window sends every search to the index
    rng = random.Random(7)
    parts = ["bert", "BERT", "res", "net", "zh", "en", "v1", "v2", "tiny", "x_y", "a.b", "q-8"]
    names = sorted({"-".join(rng.sample(parts, rng.randint(1, 3))) + f"-{i}" for i in range(300)})
    _bulk(hub, names)
    queries = ["bert", "Bert", "res-net", "net-zh", "x_y", "x_", "_", "a.b", "q-8", "-1", "1", "v", "zz", "nothing"]
    queries += ['"', "%", "tiny-BERT-v", "e"]
    newest_first = (RegisteredModelRow.updated_at.desc(), RegisteredModelRow.name.desc())
    with hub.engine.connect() as connection:
        for q in queries:
            position = sa.func.instr if hub.engine.dialect.name == "sqlite" else sa.func.strpos
            contains = position(sa.func.lower(RegisteredModelRow.name), q.lower()) > 0
            scanned = connection.scalars(sa.select(RegisteredModelRow.name).where(contains).order_by(*newest_first))
            scanned = scanned.all()
            found = [m.name for m in hub.model_catalog.search(q=q, limit=200).items]
            assert found == scanned, q
            assert [m.name for m in hub.model_catalog.search(q=q, limit=7, offset=7).items] == scanned[7:14], q
            assert hub.model_catalog.search(q=q, limit=1).total == len(scanned), q
            assert _walk(hub, 9, q=q) == scanned, q


def test_the_name_index_follows_deletes(hub):
    _bulk(hub, ["resnet-a", "resnet-b", "bert"])
    hub.model_catalog.delete("resnet-a")
    assert [m.name for m in hub.model_catalog.search(q="resnet").items] == ["resnet-b"]
    _register(hub, "resnet-a")
    assert sorted(m.name for m in hub.model_catalog.search(q="resnet").items) == ["resnet-a", "resnet-b"]


def _brute_total(hub: Hub, **filters) -> int:
    return len(hub.model_catalog.search(limit=200, **filters).items)


def test_kept_totals_follow_inserts_updates_tags_and_deletes(hub):
    _bulk(hub, [f"m-{i:02d}" for i in range(30)])
    _register(hub, "solo", owner="carol", task=TASKS[1])
    _register(hub, "solo", 2, owner="carol", task=TASKS[0])  # the task moves with the latest version
    hub.model_catalog.update("m-01", visibility="private", owner="carol", tags=["even", "prod"])
    hub.model_catalog.update("m-02", tags=[])
    hub.model_catalog.delete("m-03")
    cases = [{}, {"task": TASKS[0]}, {"task": TASKS[1]}, {"owner": "alice"}, {"owner": "carol"}, {"tag": "even"}]
    cases += [{"tag": "prod"}, {"public_only": True}, {"task": TASKS[0], "owner": "bob"}, {"q": "m-1"}]
    for filters in cases:
        page = hub.model_catalog.search(limit=1, **filters)
        assert (page.total, page.total_exact) == (_brute_total(hub, **filters), True), filters
    with hub.engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT n FROM catalog_counts WHERE key = '*'")).scalar()
        assert kept == connection.execute(sa.select(sa.func.count()).select_from(RegisteredModelRow)).scalar() == 30


def test_the_api_pages_by_cursor_and_gives_storage_per_owner(hub, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from oar.studio.app import create_app
    from oar.studio.config import StudioConfig

    monkeypatch.setenv("OAR_ARGON2_PROFILE", "cheapest")
    _bulk(hub, [f"m-{i:02d}" for i in range(12)])
    _register(hub, "solo", owner="alice")
    app = create_app(StudioConfig(home=tmp_path / "home", database_url=hub.url, deployments_enabled=False), hub)
    accounts = app.state.services.accounts
    users = (("alice", "member"), ("root", "admin"))
    tokens = {u: accounts.issue_token(accounts.create_user(u, r).id, "t") for u, r in users}
    try:
        client = TestClient(app, headers={"authorization": f"Bearer {tokens['alice']}"})
        seen, params = [], {"limit": 5}
        while True:
            body = client.get("/api/v1/models", params=params).json()
            seen += [m["name"] for m in body["items"]]
            assert body["total"] == 13 and body["total_exact"]
            if body["next_cursor"] is None:
                break
            params = {"limit": 5, "cursor": body["next_cursor"]}
        assert seen == [m.name for m in hub.model_catalog.search(limit=50).items] and len(seen) == 13
        assert client.get("/api/v1/models", params={"cursor": "nonsense"}).status_code == 422
        assert client.get("/api/v1/models/solo/versions", params={"limit": 1}).json()["next_cursor"] is None
        assert client.get("/api/v1/models/storage").json() == [{"owner": "alice", "versions": 1, "bytes": 0}]
        admin = TestClient(app, headers={"authorization": f"Bearer {tokens['root']}"})
        assert {s["owner"] for s in admin.get("/api/v1/models/storage").json()} == {"alice"}
        assert TestClient(app).get("/api/v1/models/storage").status_code == 401
    finally:
        app.state.services.close()


def _flag(hub: Hub) -> int | None:
    with hub.engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT n FROM catalog_counts WHERE key = :k"), {"k": name_search.UNORDERED}
        ).scalar()


def _scan(hub: Hub, q: str) -> list[str]:
    newest_first = (RegisteredModelRow.updated_at.desc(), RegisteredModelRow.name.desc())
    with hub.engine.connect() as connection:
        query = sa.select(RegisteredModelRow.name).where(RegisteredModelRow.name.ilike(f"%{q}%"))
        return connection.scalars(query.order_by(*newest_first)).all()


def test_sqlite_search_reads_the_name_index_newest_first_and_falls_back_when_a_write_lands_behind(tmp_path):
    hub = Hub(home=tmp_path / "home", url=f"sqlite:///{tmp_path / 'hub.db'}")
    _bulk(hub, [f"net-{i:03d}" for i in range(120)])
    _register(hub, "net-005", 2)  # a new version: net-005 moves to the front, and so does its index entry
    assert _flag(hub) is None
    with hub.sessions() as session:
        assert name_search._in_listing_order(session, "net")
        newest = name_search._restrict(session, sa.select(RegisteredModelRow), "net")
        newest = newest.order_by(name_search._FTS.c.rowid.desc()).limit(51)
        sql = str(newest.compile(hub.engine, compile_kwargs={"literal_binds": True}))
        plan = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    assert not any("TEMP B-TREE" in str(step) for step in plan), plan  # no sort: the index gives the order
    for q, owner in (("net", None), ("net-0", "alice"), ("t-11", None), ("zzz", None)):
        scanned = [n for n in _scan(hub, q) if owner is None or hub.model_catalog.get(n).owner == owner]
        assert [m.name for m in hub.model_catalog.search(q=q, owner=owner, limit=200).items] == scanned, q
        assert _walk(hub, 7, q=q, owner=owner) == scanned, q
    assert hub.model_catalog.search(q="net", limit=1).items[0].name == "net-005"

    _bulk(hub, ["net-old"])  # updated_at from the past: behind the newest entry
    assert _flag(hub) == 1
    with hub.sessions() as session:
        assert not name_search._in_listing_order(session, "net")
    assert [m.name for m in hub.model_catalog.search(q="net", limit=200).items] == _scan(hub, "net")

    with hub.sessions() as session:  # `oar hub reindex`: in listing order again, the flag cleared
        assert name_search.renumber(session) == 121
        session.commit()
    assert _flag(hub) is None
    assert [m.name for m in hub.model_catalog.search(q="net", limit=200).items] == _scan(hub, "net")
    assert _walk(hub, 7, q="net") == _scan(hub, "net")
    hub.close()
