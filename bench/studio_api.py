"""Studio API listing latency with 10,000 (or ``--versions 1000000``) model versions, on SQLite and PostgreSQL.

Fills a fresh database in bulk (``--versions`` in all over ``--models`` names, by default five versions a
name; tags and owners spread over them; COPY on PostgreSQL, executemany on SQLite),
then times ``--requests`` calls of each listing against a real studio (uvicorn on a loopback port, one
keep-alive httpx client; auth by bearer token, validation, the database query, JSON): a page of 50
models unfiltered, filtered by task, by name search (common and rare), by tag, by owner, by two filters,
an offset page (1,000), a deep page by cursor (half-way down), a page of one model's versions, the
storage figures (a member's own, every owner's for an admin: ``--storage-requests`` each), and last the
two searches again on the search path from before migration 0008 (SQLite: sorting every match), on the
same data in the same run.
The baseline, timed in the same process and run, is ``/api/v1/health`` (the app without a query);
each line prints p50/p99 in ms and p99 as a ratio of the baseline's p99. The target: p99 < 50 ms.

    python bench/studio_api.py                      # SQLite, then PostgreSQL (a throwaway server)
    python bench/studio_api.py --only sqlite
    python bench/studio_api.py --versions 1000000   # 200,000 models
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

PG_BIN = Path("/usr/lib/postgresql/15/bin")
TASKS = ("text-classification", "image-classification", "generic")
TAGS = ("zh", "en", "vision", "prod", "experimental", "small", "large", "int8")
OWNERS = ("alice", "bob", "carol", "dave")
TARGET_P99_MS = 50.0


@contextmanager
def postgres():
    """initdb + pg_ctl on a free loopback port in a temporary directory (as ``postgres`` when root)."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="oar-bench-pg-"))
    root.chmod(0o755)
    if as_user:
        shutil.chown(root, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = root / "data"
    subprocess.run(
        [*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def serving(app):  # type: ignore[no-untyped-def]
    """uvicorn in a thread on a free loopback port; yields the base URL."""
    import threading

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


START = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 50_000


def model_name(i: int) -> str:
    return f"model-{i:06d}"


def updated_at(i: int) -> datetime:
    return START + timedelta(minutes=i)


def version_rows(models: int, per_model: int):  # type: ignore[no-untyped-def]
    """The ``models`` table's rows, as ``register_model`` leaves them (the package files are not needed)."""
    for i in range(models):
        name, task = model_name(i), TASKS[i % len(TASKS)]
        for v in range(1, per_model + 1):
            manifest = json.dumps({"name": name, "version": v, "task": task, "metrics": {"acc": 0.8}})
            created = START + timedelta(minutes=i * per_model + v)
            yield (name, v, f"sha256:{i:06d}{v:04d}", task, None, None, manifest, created, 1000 * (1 + (i + v) % 97))


def catalog_rows(models: int, per_model: int):  # type: ignore[no-untyped-def]
    for i in range(models):
        task, owner = TASKS[i % len(TASKS)], OWNERS[i % len(OWNERS)]
        yield (model_name(i), owner, "private", "", task, per_model, START, updated_at(i))


def tag_rows(models: int):  # type: ignore[no-untyped-def]
    for i in range(models):
        for tag in sorted({TAGS[i % len(TAGS)], TAGS[(i * 7 + 3) % len(TAGS)]}):
            yield (model_name(i), tag)


TABLES = {
    "models": "name, version, digest, task, run_id, parent, manifest, created_at, size",
    "registered_models": "name, owner, visibility, description, task, latest_version, created_at, updated_at",
    "model_tags": "name, tag",
}


def fill(hub, models: int, per_model: int) -> None:  # type: ignore[no-untyped-def]
    """Bulk rows straight into the hub's tables: COPY on PostgreSQL, chunked executemany on SQLite.

    The catalog's counters and name index are kept by the database's own triggers, as for any insert.
    """
    sources = {
        "models": version_rows(models, per_model),
        "registered_models": catalog_rows(models, per_model),
        "model_tags": tag_rows(models),
    }
    raw = hub.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, rows in sources.items():
            if hub.engine.dialect.name == "postgresql":
                with cursor.copy(f"COPY {table} ({TABLES[table]}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(TABLES[table].split(",")))
                while chunk := [_sqlite_row(r) for r in itertools.islice(rows, CHUNK)]:
                    cursor.executemany(f"INSERT INTO {table} ({TABLES[table]}) VALUES ({marks})", chunk)
        raw.commit()
        if hub.engine.dialect.name == "postgresql":
            cursor.execute("ANALYZE")  # what autovacuum does after a bulk load; a SQLite hub keeps no statistics
            raw.commit()
    finally:
        raw.close()


def _sqlite_row(row: tuple) -> tuple:
    """Datetimes as SQLAlchemy stores them in SQLite (UTC wall-clock text)."""
    return tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in row)


def _search_sorts_every_match(hub) -> None:  # type: ignore[no-untyped-def]
    """Raise the flag that sends SQLite's name search back to sorting every match (as before 0008)."""
    from sqlalchemy import text

    from oar.hub.name_search import UNORDERED

    if hub.engine.dialect.name == "sqlite":
        with hub.engine.begin() as connection:
            connection.execute(text("INSERT INTO catalog_counts (key, n) VALUES (:k, 1)"), {"k": UNORDERED})


def timings(client, path: str, params: dict, requests: int, headers=None) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Wall-clock ms per request, and CPU ms per request of this process (server thread and client together):
    the CPU figure moves much less than the wall clock when other work shares the machine."""
    for _ in range(min(5, requests)):  # warm-up: connections, caches
        client.get(path, params=params, headers=headers)
    wall, cpu = np.empty(requests), np.empty(requests)
    for i in range(requests):
        began, began_cpu = time.perf_counter(), time.process_time()
        response = client.get(path, params=params, headers=headers)
        wall[i] = (time.perf_counter() - began) * 1000
        cpu[i] = (time.process_time() - began_cpu) * 1000
        assert response.status_code == 200, response.text
    return wall, cpu


def run(kind: str, url: str, home: Path, args: argparse.Namespace) -> bool:
    from argon2 import profiles

    from oar.hub import Hub
    from oar.hub.listing import encode_cursor
    from oar.studio.app import create_app
    from oar.studio.config import StudioConfig

    hub = Hub(home=home, url=url)
    models = args.models or max(args.versions // 5, 1)
    per_model = max(args.versions // models, 1)
    began = time.perf_counter()
    fill(hub, models, per_model)
    filled = time.perf_counter() - began
    # the cheapest Argon2: the token is verified once, then cached, so it does not move the figures
    config = StudioConfig(home=home, database_url=url, deployments_enabled=False, argon2=profiles.CHEAPEST)
    app = create_app(config, hub)
    accounts = app.state.services.accounts
    token = accounts.issue_token(accounts.create_user("alice", "member").id, "bench")
    admin = {"authorization": f"Bearer {accounts.issue_token(accounts.create_user('root', 'admin').id, 'bench')}"}
    total = models * per_model
    print(
        f"\n{kind}: {total:,} model versions ({models:,} models) filled in {filled:.1f} s; "
        f"{args.requests} requests per line"
    )
    deep = max(models - 1 - models // 2, 0)  # the cursor of the item half-way down the newest-first listing
    deep_cursor = encode_cursor(updated_at(deep), model_name(deep))
    cases = [
        ("baseline: /health (no query)", "/api/v1/health", {}),
        ("models, page of 50", "/api/v1/models", {"limit": 50}),
        ("models by task", "/api/v1/models", {"limit": 50, "task": "image-classification"}),
        ("models by name search", "/api/v1/models", {"limit": 50, "q": "model-01"}),
        ("models by name search, rare", "/api/v1/models", {"limit": 50, "q": model_name(models // 3)[:-1]}),
        ("models by tag", "/api/v1/models", {"limit": 50, "tag": "prod"}),
        ("models by owner", "/api/v1/models", {"limit": 50, "owner": "carol"}),
        ("models by task and owner", "/api/v1/models", {"limit": 50, "task": "generic", "owner": "bob"}),
        ("models, offset 1,000", "/api/v1/models", {"limit": 50, "offset": 1000}),
        (f"deep page by cursor ({models // 2:,})", "/api/v1/models", {"limit": 50, "cursor": deep_cursor}),
        ("versions of one model", f"/api/v1/models/{model_name(models // 2)}/versions", {"limit": 50}),
        ("before: name search sorting every match", "/api/v1/models", {"limit": 50, "q": "model-01", "unordered": 1}),
        ("before: name search, rare", "/api/v1/models", {"limit": 50, "q": model_name(models // 3)[:-1]}),
        ("storage, a member's own (a quarter)", "/api/v1/storage", {}),
        ("storage, every owner (admin)", "/api/v1/storage", {"as": "admin"}),
    ]
    ok = True
    with (
        serving(app) as base,
        httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"}, timeout=120) as client,
    ):
        base_p99 = None
        for label, path, params in cases:
            headers = admin if params.pop("as", None) == "admin" else None
            if params.pop("unordered", None):  # the search path from before migration 0008 (SQLite), same data
                _search_sorts_every_match(hub)
            requests = args.storage_requests if path.endswith("/storage") else args.requests
            ms, cpu = timings(client, path, params, requests, headers)
            p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
            base_p99 = base_p99 or p99
            verdict = "" if label.startswith("baseline") else ("  ok" if p99 < TARGET_P99_MS else "  OVER 50 ms")
            ok = ok and (label.startswith("baseline") or p99 < TARGET_P99_MS)
            print(
                f"  {label:<34} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  cpu p50 {np.percentile(cpu, 50):6.2f} ms  "
                f"({p99 / base_p99:4.1f}x baseline p99){verdict}"
            )
    app.state.services.close()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=10_000, help="model versions in all (1000000: the big hub)")
    parser.add_argument("--models", type=int, default=0, help="model names (default: versions / 5)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--storage-requests", type=int, default=30, help="requests per storage line (a scan)")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="oar-bench-studio-") as tmp:
        if args.only in (None, "sqlite"):
            home = Path(tmp) / "sqlite"
            ok &= run("SQLite", f"sqlite:///{home / 'hub.db'}", home, args)
        if args.only in (None, "postgresql"):
            with postgres() as url:
                ok &= run("PostgreSQL", url, Path(tmp) / "pg", args)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
