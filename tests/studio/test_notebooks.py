"""Notebooks on a real JupyterHub started by a real studio: sign-in by studio ticket, one system account
per user, kernels with the user's own studio rights, isolation through the proxy and on disk, restarts."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from oar.notebooks.remote import execute, start_kernel

from .browser import chromium, free_port, serving, shot
from .conftest import PASSWORD, StudioWorld, build_world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
MEMORY_MB = 2048


@dataclass
class Site:
    world: StudioWorld
    url: str
    homes: Path
    prefix: str

    @property
    def notebooks(self):  # type: ignore[no-untyped-def]
        return self.world.app.state.services.notebooks

    def who(self, name: str):  # type: ignore[no-untyped-def]
        return self.world.app.state.services.accounts.by_name(name).principal()

    def service_headers(self) -> dict[str, str]:
        return {"authorization": f"token {(self.notebooks.hub.state_dir / 'service_token').read_text().strip()}"}

    def server_url(self, name: str) -> str:
        return f"{self.notebooks.hub.url}/user/{name}"

    def browser_for(self, name: str) -> httpx.Client:
        """An HTTP client signed in to the hub the way a browser is: the studio's ticket link, redirects followed."""
        client = httpx.Client(follow_redirects=True, timeout=60)
        client.get(self.notebooks.open_url(self.who(name)))
        return client

    def start_and_wait(self, name: str) -> None:
        response = self.world.client(name).post("/api/v1/notebooks/start")
        assert response.status_code in (200, 202), response.text
        server = self.notebooks.wait_running(self.who(name))
        assert server.status == "running", server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, numeric_package: Path) -> Iterator[Site]:
    from oar.notebooks import NotebookSettings

    if os.geteuid() != 0:
        pytest.skip("notebooks make a system account per user: the tests run as root (as CI does)")
    home = tmp_path_factory.mktemp("notebooks")
    homes = Path(tempfile.mkdtemp(prefix="oar-notebook-homes-", dir="/tmp"))  # reachable by the accounts
    prefix = f"t{secrets.token_hex(2)}-"  # accounts of this run only
    settings = NotebookSettings(
        home_root=homes,
        user_prefix=prefix,
        max_notebook_mb=1,
        grant_traverse=True,
        memory_mb=MEMORY_MB,
        cpus=1.0,
        max_processes=256,
    )
    port = free_port()
    world = build_world(f"sqlite:///{home / 'hub.db'}", home, numeric_package, port=port, notebooks=settings)
    try:
        with serving(world.app, port) as url:
            yield Site(world, url, homes, prefix)
            world.app.state.services.notebooks.hub.shutdown()
    finally:
        for entry in pwd.getpwall():
            if entry.pw_name.startswith(prefix):
                subprocess.run(["userdel", entry.pw_name], capture_output=True, check=False)
        shutil.rmtree(homes, ignore_errors=True)


def test_a_viewer_gets_no_notebooks(site: Site) -> None:
    response = site.world.client("vera").post("/api/v1/notebooks/start")
    assert response.status_code == 403
    assert "viewer cannot use notebooks" in response.json()["error"]["message"]


def test_a_member_starts_their_server_and_starting_twice_says_so(site: Site) -> None:
    client = site.world.client("alice")
    assert client.get("/api/v1/notebooks").json()["status"] in ("stopped", "failed")
    site.start_and_wait("alice")
    again = client.post("/api/v1/notebooks/start")
    assert again.status_code == 200
    assert again.json()["message"] == "your notebook server is already running"
    home = Path(pwd.getpwnam(f"{site.prefix}alice").pw_dir)
    assert home.parent == site.homes and (home.stat().st_mode & 0o777) == 0o700


def test_no_port_answers_without_studio_credentials(site: Site) -> None:
    hub = site.notebooks.hub.url
    anonymous = httpx.get(f"{hub}/user/alice/lab", follow_redirects=True, timeout=30)
    assert str(anonymous.url) == f"{site.url}/signin?next=/notebooks"  # the studio asks who it is
    assert httpx.get(f"{hub}/hub/api/users", timeout=30).status_code == 403
    assert httpx.get(f"{hub}/user/alice/api/contents", timeout=30).status_code == 403
    forged = httpx.get(f"{hub}/hub/oar-login", params={"ticket": "eyJ1IjoiYWxpY2UifQ.x.y"}, timeout=30)
    assert forged.status_code == 403
    link = site.notebooks.open_url(site.who("alice"))
    assert httpx.get(link, timeout=30).status_code == 302
    assert httpx.get(link, timeout=30).status_code == 403  # a ticket works once


def test_a_signed_in_member_lands_in_their_own_jupyterlab(site: Site) -> None:
    browser = site.browser_for("alice")
    lab = browser.get(f"{site.server_url('alice')}/lab")
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    specs = browser.get(f"{site.server_url('alice')}/api/kernelspecs").json()
    assert specs["default"] == "oar-python"
    assert specs["kernelspecs"]["oar-python"]["spec"]["display_name"] == "Python (oar, PyTorch)"


def test_the_kernel_runs_oar_with_the_users_own_rights(site: Site) -> None:
    url, headers = site.server_url("alice"), site.service_headers()
    kernel = start_kernel(url, headers)
    code = (
        "import os, getpass, httpx, oar\n"
        "h = {'authorization': 'Bearer ' + os.environ['OAR_STUDIO_TOKEN']}\n"
        "base = os.environ['OAR_STUDIO_URL'] + '/api/v1'\n"
        "me = httpx.get(base + '/me', headers=h).json()\n"
        "print(getpass.getuser(), me['username'], me['role'], httpx.get(base + '/users', headers=h).status_code)\n"
    )
    outcome = execute(url, headers, kernel, code)
    assert outcome.error is None, outcome
    assert outcome.stdout.split() == [f"{site.prefix}alice", "alice", "member", "403"]


def test_users_cannot_reach_each_others_servers_or_files(site: Site) -> None:
    site.start_and_wait("bob")
    site.notebooks.put_notebook(site.who("bob"), "private/secret.ipynb", _notebook("bob's secret"))
    bob = site.browser_for("bob")
    assert bob.get(f"{site.server_url('bob')}/api/contents/private").status_code == 200
    for path in ("/lab", "/api/contents", "/api/kernels", "/api/contents/private/secret.ipynb"):
        assert bob.get(f"{site.server_url('alice')}{path}").status_code in (403, 404), path
    bob_token = {"authorization": f"token {site.world.tokens['bob']}"}
    assert httpx.get(f"{site.server_url('alice')}/api/contents", headers=bob_token).status_code == 403

    bob_home = pwd.getpwnam(f"{site.prefix}bob").pw_dir
    url, headers = site.server_url("alice"), site.service_headers()
    outcome = execute(url, headers, start_kernel(url, headers), f"open({bob_home + '/private/secret.ipynb'!r}).read()")
    assert outcome.error is not None and outcome.error.startswith("PermissionError"), outcome


def test_a_kernel_over_its_memory_limit_gets_memory_error_and_the_other_user_is_untouched(site: Site) -> None:
    from oar.notebooks.resources import cgroup_dirs

    headers = site.service_headers()
    alice, bob = site.server_url("alice"), site.server_url("bob")
    greedy, calm = start_kernel(alice, headers), start_kernel(bob, headers)
    limits = "import resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0] >> 20, resource.getrlimit(6)[0])\n"
    grab = (
        "try:\n    block = bytearray(3 << 30)\n    print('allocated')\nexcept MemoryError:\n    print('MemoryError')\n"
    )
    outcome = execute(alice, headers, greedy, limits + grab)
    assert outcome.stdout.split() == [str(MEMORY_MB), "256", "MemoryError"], outcome
    assert execute(alice, headers, greedy, "1 + 1").result == "2"  # the kernel lives on
    assert execute(bob, headers, calm, "sum(range(10**6))").result == str(sum(range(10**6)))

    groups = cgroup_dirs(f"{site.prefix}alice")
    if groups:  # cgroups writable here: the account's group holds the kernel, with RAM and CPU capped
        member = execute(alice, headers, greedy, "print(open('/proc/self/cgroup').read())").stdout
        assert f"oar-notebooks/{site.prefix}alice" in member
        folder = groups.get("v2") or groups["memory"]
        memory = (folder / ("memory.max" if "v2" in groups else "memory.limit_in_bytes")).read_text()
        assert int(memory) == MEMORY_MB << 20
        cpu = (groups.get("v2") or groups["cpu"]) / ("cpu.max" if "v2" in groups else "cpu.cfs_quota_us")
        assert cpu.read_text().split()[0] == "100000"  # one core per 100 ms period


def test_a_notebook_over_the_size_limit_is_refused_with_a_message(site: Site) -> None:
    from oar._core.errors import PayloadTooLargeError

    with pytest.raises(PayloadTooLargeError, match=r"over the 1 MB limit: clear large outputs"):
        site.notebooks.put_notebook(site.who("alice"), "big.ipynb", _notebook("x" * 1_500_000))


def test_a_restarted_server_keeps_the_users_files(site: Site) -> None:
    site.notebooks.put_notebook(site.who("alice"), "work/keep.ipynb", _notebook("print('kept')"))
    client = site.world.client("alice")
    assert client.post("/api/v1/notebooks/stop").status_code == 200
    deadline = time.monotonic() + 60
    while client.get("/api/v1/notebooks").json()["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    site.start_and_wait("alice")
    kept = httpx.get(f"{site.server_url('alice')}/api/contents/work/keep.ipynb", headers=site.service_headers())
    assert kept.status_code == 200
    assert kept.json()["content"]["cells"][0]["source"] == "print('kept')"


def test_a_killed_hub_is_restarted_and_running_servers_are_readopted(site: Site) -> None:
    hub = site.notebooks.hub
    before_pid = hub.pid()
    server_pid = hub.api("GET", "/users/alice")["servers"][""]["state"]["pid"]
    cullers = _cullers()
    os.kill(before_pid, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while hub.pid() == before_pid or not hub.ready():
        assert time.monotonic() < deadline, hub.log_tail()
        time.sleep(0.3)
    server = site.world.client("alice").get("/api/v1/notebooks").json()
    assert server["status"] == "running", server
    assert hub.api("GET", "/users/alice")["servers"][""]["state"]["pid"] == server_pid
    time.sleep(1)
    assert not cullers & _cullers()  # the killed hub's idle culler ended with it


def _cullers() -> set[int]:
    found = subprocess.run(["pgrep", "-f", "oar.notebooks.culler"], capture_output=True, text=True)
    return {int(pid) for pid in found.stdout.split()}


def test_a_server_that_cannot_start_says_why(site: Site) -> None:
    accounts = site.world.app.state.services.accounts
    user = accounts.create_user("mallory", "member", "correct horse battery")
    site.world.tokens["mallory"] = accounts.issue_token(user.id, "tests")
    subprocess.run(["useradd", "--no-create-home", f"{site.prefix}mallory"], check=True)  # not ours: never taken
    response = site.world.client("mallory").post("/api/v1/notebooks/start")
    body = response.json()
    assert body["status"] == "failed", body
    assert "exists and was not made for notebooks" in body["message"]
    assert site.world.client("mallory").get("/api/v1/notebooks").json()["status"] == "failed"


def test_a_disabled_or_demoted_user_loses_their_server_tokens_and_cookie_at_once(site: Site) -> None:
    """Disabling dora (or making erin a viewer) stops her server and every process of her account now, not at
    the next cull, and the hub cookie, hub token and kernel token she held stop working."""
    accounts = site.world.app.state.services.accounts
    users = {}
    for name in ("dora", "erin"):
        users[name] = accounts.create_user(name, "member", PASSWORD)
        site.world.tokens[name] = accounts.issue_token(users[name].id, "tests")
        site.start_and_wait(name)
    hub = site.notebooks.hub
    browser = site.browser_for("dora")
    assert browser.get(f"{site.server_url('dora')}/api/contents").status_code == 200
    browser.get(f"{hub.url}/hub/token")  # as on the hub's token page: her cookie and its xsrf token
    made = browser.post(
        f"{hub.url}/hub/api/users/dora/tokens",
        json={"expires_in": 3600, "note": "mine"},
        headers={"x-xsrftoken": browser.cookies.get("_xsrf", path="/hub/") or ""},
    )
    assert made.status_code == 201, made.text
    hub_token = made.json()["token"]
    as_dora = {"authorization": f"token {hub_token}"}
    assert httpx.get(f"{hub.url}/hub/api/user", headers=as_dora, timeout=30).status_code == 200
    server_pid = hub.api("GET", "/users/dora")["servers"][""]["state"]["pid"]
    url, headers = site.server_url("dora"), site.service_headers()
    detached = "import subprocess; print(subprocess.Popen(['sleep', '600'], start_new_session=True).pid)"
    outcome = execute(url, headers, start_kernel(url, headers), detached)
    sleeper = int(outcome.stdout.strip())
    kernel_token = (hub.state_dir / "tokens" / "dora").read_text().strip()

    admin = site.world.client("admin")
    assert admin.patch(f"/api/v1/users/{users['dora'].id}", json={"disabled": True}).status_code == 200
    for pid in (server_pid, sleeper):
        assert not _alive(pid), pid
    assert httpx.get(f"{hub.url}/hub/api/user", headers=as_dora, timeout=30).status_code == 403
    assert browser.get(f"{hub.url}/hub/api/user").status_code == 403
    lab = browser.get(f"{site.server_url('dora')}/api/contents")
    assert lab.status_code != 200 or "/signin" in str(lab.url), lab.url
    assert accounts.verify_token(kernel_token) is None
    assert "dora" not in {u["name"] for u in hub.api("GET", "/users")}

    erin_pid = hub.api("GET", "/users/erin")["servers"][""]["state"]["pid"]
    assert admin.patch(f"/api/v1/users/{users['erin'].id}", json={"role": "viewer"}).status_code == 200
    assert not _alive(erin_pid)
    assert site.world.client("erin").post("/api/v1/notebooks/start").status_code == 403
    assert site.world.client("alice").get("/api/v1/notebooks").json()["status"] == "running"  # others keep theirs


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1][0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_in_a_browser_a_member_opens_a_model_in_a_notebook_and_a_second_user_is_refused(site: Site) -> None:
    """Sign in, start the server (spinner), Open in notebook from a model page, run its cells in JupyterLab,
    see the prediction, stop; Bob, signed in, is refused Alice's server. Screenshots in test-artifacts."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _sign_in(page, site.url, "alice")
        page.goto(f"{site.url}/notebooks")
        if page.get_attribute("#notebook-server", "data-status") == "running":
            page.click("#notebook-stop")
            page.wait_for_selector("#notebook-server[data-status=stopped]", timeout=60_000)
        shot(page, "notebooks-01-stopped")
        page.click("#notebook-start")
        page.wait_for_selector("#notebook-server:is([data-status=starting], [data-status=running])", timeout=60_000)
        if page.get_attribute("#notebook-server", "data-status") == "starting":
            assert page.is_visible("#notebook-spinner") and page.is_hidden("#notebook-open")
        shot(page, "notebooks-02-starting")
        page.wait_for_selector("#notebook-server[data-status=running]", timeout=180_000)
        assert page.is_visible("#notebook-open") and page.is_hidden("#notebook-spinner")
        assert "Open my copy" in page.inner_text("#learn")
        shot(page, "notebooks-03-running")

        page.goto(f"{site.url}/models/sentiment/versions/2")
        page.click("#open-in-notebook")
        try:
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=180_000)
        finally:
            shot(page, "notebooks-04-opened")
        assert page.url.endswith("/user/alice/lab/tree/from-studio/model-sentiment-v2.ipynb"), page.url
        _accept_kernel_dialog(page)  # JupyterLab may ask which kernel: the notebook's own is preselected
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=120_000)
        page.click("li.lm-MenuBar-item >> text=Run")
        page.click("li.lm-Menu-item >> text=Run All Cells")
        _accept_kernel_dialog(page)
        output = page.locator(".jp-OutputArea-output", has_text="prediction:")
        try:
            output.wait_for(timeout=240_000)
        finally:
            with contextlib.suppress(Exception):  # the output in view for the screenshot
                output.scroll_into_view_if_needed(timeout=5_000)
            shot(page, "notebooks-05-prediction-in-jupyterlab")
            print(page.inner_text(".jp-Notebook")[-3000:])
        assert "output" in output.inner_text()

        page.goto(f"{site.url}/notebooks")
        page.click("#notebook-stop")
        page.wait_for_selector("#notebook-server[data-status=stopped]", timeout=60_000)
        shot(page, "notebooks-06-stopped-again")

        intruder = browser.new_page(viewport={"width": 1280, "height": 900})
        _sign_in(intruder, site.url, "bob")
        site.start_and_wait("alice")
        site.start_and_wait("bob")  # Bob has his own server: the hub signs him in, then refuses Alice's
        refused = intruder.goto(f"{site.notebooks.hub.url}/user/alice/lab")
        assert refused is not None and refused.status in (403, 404)
        shot(intruder, "notebooks-07-second-user-refused")


def _accept_kernel_dialog(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        page.click(".jp-Dialog button.jp-mod-accept", timeout=10_000)


def _sign_in(page, url: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/signin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_url(f"{url}/")


def _notebook(source: str) -> dict:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {"cell_type": "code", "id": "c1", "metadata": {}, "source": source, "outputs": [], "execution_count": None}
        ],
    }
