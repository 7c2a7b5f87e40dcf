"""Faults of the notebook hub on a real JupyterHub (no studio in front: the hub's own API as the studio's
service): its ports taken while it was down, a kernel that dies, and the idle culler with a short timeout
stopping an idle server while a silently busy kernel keeps its server."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oar.notebooks.remote import execute, start_kernel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
IDLE_TIMEOUT, CULL_EVERY = 20, 5


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[Path, str]]:
    if os.geteuid() != 0:
        pytest.skip("notebooks make a system account per user: the tests run as root (as CI does)")
    homes = Path(tempfile.mkdtemp(prefix="oar-notebook-homes-", dir="/tmp"))
    prefix = f"f{secrets.token_hex(2)}-"
    try:
        yield homes, prefix
    finally:
        for entry in pwd.getpwall():
            if entry.pw_name.startswith(prefix):
                subprocess.run(["userdel", entry.pw_name], capture_output=True, check=False)
        shutil.rmtree(homes, ignore_errors=True)


def _hub(state: Path, homes: Path, prefix: str):  # type: ignore[no-untyped-def]
    from oar.notebooks import NotebookSettings
    from oar.notebooks.hub import NotebookHub

    settings = NotebookSettings(
        home_root=homes, user_prefix=prefix, idle_timeout=IDLE_TIMEOUT, cull_every=CULL_EVERY, grant_traverse=True
    )
    return NotebookHub(state, settings, studio_url="http://127.0.0.1:9", ticket_key=secrets.token_hex(16))


@pytest.fixture(scope="module")
def hub(accounts: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    running = _hub(tmp_path_factory.mktemp("faults"), *accounts)
    running.ensure_running()
    yield running
    running.shutdown()


def _start(hub, name: str) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    hub.api("POST", f"/users/{name}", ok=(201, 409))
    hub.api("POST", f"/users/{name}/server", ok=(201, 202, 400))
    deadline = time.monotonic() + 120
    while not (hub.api("GET", f"/users/{name}")["servers"].get("") or {}).get("ready"):
        assert time.monotonic() < deadline, hub.log_tail()
        time.sleep(0.3)
    headers = {"authorization": f"token {(hub.state_dir / 'service_token').read_text().strip()}"}
    return f"{hub.url}/user/{name}", headers


def test_ports_taken_while_the_hub_was_down_are_replaced(accounts: tuple[Path, str], tmp_path: Path) -> None:
    first = _hub(tmp_path, *accounts)
    first.ensure_running()
    run = json.loads((tmp_path / "run.json").read_text())
    first.shutdown()
    squatters = []
    for key in ("proxy_port", "hub_port"):  # another program listens there now
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the old hub's TIME_WAIT
        deadline = time.monotonic() + 20
        while True:  # the old proxy may take a moment to exit
            try:
                sock.bind(("127.0.0.1", run[key]))
                sock.listen()
                squatters.append(sock)
                break
            except OSError:
                if time.monotonic() > deadline:  # some other program holds it (e.g. as a client port): taken too
                    sock.close()
                    break
                time.sleep(0.2)
    try:
        again = _hub(tmp_path, *accounts)
        again.ensure_running(wait=120)
        moved = json.loads((tmp_path / "run.json").read_text())
        assert moved["proxy_port"] != run["proxy_port"] and moved["hub_port"] != run["hub_port"]
        assert httpx.get(f"{again.url}/hub/health", timeout=10).status_code == 200
        again.shutdown()
    finally:
        for sock in squatters:
            sock.close()


def test_a_kernel_that_dies_is_restarted_and_answers(hub) -> None:  # type: ignore[no-untyped-def]
    url, headers = _start(hub, "kim")
    kernel = start_kernel(url, headers)
    assert execute(url, headers, kernel, "x = 41\nx + 1").result == "42"
    with pytest.raises(Exception):  # noqa: B017 - the kernel dies mid-cell: no idle status ever comes
        execute(url, headers, kernel, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", timeout=15)
    restarted = httpx.post(f"{url}/api/kernels/{kernel}/restart", headers=headers, timeout=60)
    assert restarted.status_code == 200, restarted.text
    outcome = execute(url, headers, kernel, "'x' in globals(), 1 + 1")
    assert outcome.error is None and outcome.result == "(False, 2)", outcome  # a fresh kernel, working


def test_the_culler_stops_an_idle_server_and_never_a_busy_one(hub) -> None:  # type: ignore[no-untyped-def]
    busy_url, headers = _start(hub, "busy")
    kernel = start_kernel(busy_url, headers)
    quiet = IDLE_TIMEOUT * 2 + CULL_EVERY * 3  # silent for twice the idle timeout, and more
    answers: list[object] = []
    worker = threading.Thread(
        target=lambda: answers.append(execute(busy_url, headers, kernel, f"import time\ntime.sleep({quiet})\n7")),
        daemon=True,
    )
    started = time.monotonic()
    worker.start()
    _start(hub, "idle")
    while _running(hub, "idle"):
        assert time.monotonic() - started < quiet, "the idle server was not culled"
        time.sleep(1)
    while time.monotonic() - started < quiet - 2:
        assert _running(hub, "busy"), "a server whose kernel was busy was culled"
        time.sleep(1)
    worker.join(timeout=60)
    assert answers and answers[0].result == "7", answers  # type: ignore[attr-defined]
    assert _running(hub, "busy")


def _running(hub, name: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(hub.api("GET", f"/users/{name}")["servers"].get(""))
