"""Studio API listing latency with 10,000 model versions, on SQLite and on PostgreSQL.

Fills a fresh database (``--models`` names x ``--versions`` versions, tags and owners spread over them),
then times ``--requests`` calls of each listing against a real studio (uvicorn on a loopback port, one
keep-alive httpx client; auth by bearer token, validation, the database query, JSON): a page of 50
models unfiltered, filtered by task, by name search, by tag, by owner, a deep page (offset 1,000), and
a page of one model's versions.
The baseline, timed in the same process and run, is ``/api/v1/health`` (the app without a query);
each line prints p50/p99 in ms and p99 as a ratio of the baseline's p99. The target: p99 < 50 ms.

    python bench/studio_api.py                      # SQLite, then PostgreSQL (a throwaway server)
    python bench/studio_api.py --only sqlite
"""

from __future__ import annotations

import argparse
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
import sqlalchemy as sa

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


def fill(hub, models: int, versions: int) -> None:  # type: ignore[no-untyped-def]
    """Rows straight into the hub's tables, as ``register_model`` leaves them (the files are not needed)."""
    from oar.hub.orm import ModelRow, ModelTagRow, RegisteredModelRow

    start = datetime(2026, 1, 1, tzinfo=UTC)
    model_rows, catalog_rows, tag_rows = [], [], []
    for i in range(models):
        name, task, owner = f"model-{i:05d}", TASKS[i % len(TASKS)], OWNERS[i % len(OWNERS)]
        for v in range(1, versions + 1):
            model_rows.append(
                {
                    "name": name,
                    "version": v,
                    "digest": f"sha256:{i:05d}{v:03d}",
                    "task": task,
                    "run_id": None,
                    "parent": None,
                    "created_at": start + timedelta(minutes=i * versions + v),
                    "manifest": {"name": name, "version": v, "task": task, "metrics": {"acc": 0.8}},
                }
            )
        catalog_rows.append(
            {
                "name": name,
                "owner": owner,
                "visibility": "private",
                "description": "",
                "task": task,
                "latest_version": versions,
                "created_at": start,
                "updated_at": start + timedelta(minutes=i),
            }
        )
        tag_rows += [{"name": name, "tag": TAGS[i % len(TAGS)]}, {"name": name, "tag": TAGS[(i * 7 + 3) % len(TAGS)]}]
    with hub.engine.begin() as connection:
        connection.execute(sa.insert(ModelRow), model_rows)
        connection.execute(sa.insert(RegisteredModelRow), catalog_rows)
        connection.execute(sa.insert(ModelTagRow), [dict(t) for t in {tuple(r.items()) for r in tag_rows}])
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("ANALYZE"))


def timings(client, path: str, params: dict, requests: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    for _ in range(5):  # warm-up: connections, caches
        client.get(path, params=params)
    out = np.empty(requests)
    for i in range(requests):
        began = time.perf_counter()
        response = client.get(path, params=params)
        out[i] = (time.perf_counter() - began) * 1000
        assert response.status_code == 200, response.text
    return out


def run(kind: str, url: str, home: Path, args: argparse.Namespace) -> bool:
    from argon2 import profiles

    from oar.hub import Hub
    from oar.studio.app import create_app
    from oar.studio.config import StudioConfig

    hub = Hub(home=home, url=url)
    began = time.perf_counter()
    fill(hub, args.models, args.versions)
    filled = time.perf_counter() - began
    # the cheapest Argon2: the token is verified once, then cached, so it does not move the figures
    config = StudioConfig(home=home, database_url=url, deployments_enabled=False, argon2=profiles.CHEAPEST)
    app = create_app(config, hub)
    accounts = app.state.services.accounts
    token = accounts.issue_token(accounts.create_user("alice", "member").id, "bench")
    total = args.models * args.versions
    print(
        f"\n{kind}: {total:,} model versions ({args.models:,} models) filled in {filled:.1f} s; "
        f"{args.requests} requests per line"
    )
    cases = [
        ("baseline: /health (no query)", "/api/v1/health", {}),
        ("models, page of 50", "/api/v1/models", {"limit": 50}),
        ("models by task", "/api/v1/models", {"limit": 50, "task": "image-classification"}),
        ("models by name search", "/api/v1/models", {"limit": 50, "q": "model-01"}),
        ("models by tag", "/api/v1/models", {"limit": 50, "tag": "prod"}),
        ("models by owner", "/api/v1/models", {"limit": 50, "owner": "carol"}),
        ("models, offset 1,000", "/api/v1/models", {"limit": 50, "offset": 1000}),
        ("versions of one model", f"/api/v1/models/model-{args.models // 2:05d}/versions", {"limit": 50}),
    ]
    ok = True
    with serving(app) as base, httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"}) as client:
        base_p99 = None
        for label, path, params in cases:
            ms = timings(client, path, params, args.requests)
            p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
            base_p99 = base_p99 or p99
            verdict = "" if label.startswith("baseline") else ("  ok" if p99 < TARGET_P99_MS else "  OVER 50 ms")
            ok = ok and (label.startswith("baseline") or p99 < TARGET_P99_MS)
            print(f"  {label:<30} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({p99 / base_p99:4.1f}x baseline p99){verdict}")
    app.state.services.close()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
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
