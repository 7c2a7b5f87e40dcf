"""`oar studio` for real (first start prints a one-time admin link), `oar login`, and the hub commands
against the studio when logged in and against the local hub after `oar logout`."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .browser import serving
from .conftest import build_world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def _oar(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    env.pop("OAR_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "oar.cli.main", *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_first_start_prints_a_one_time_admin_link_that_works_once(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OAR_HOME": str(tmp_path / "home")}
    env.pop("OAR_DATABASE_URL", None)
    log = tmp_path / "studio.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "oar.cli.main", "studio", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while "oar studio on" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        link = re.search(r"http://127\.0\.0\.1:\d+/signin/link/\S+", log.read_text()).group(0)
        with httpx.Client(timeout=30) as browser:
            for _ in range(100):
                try:
                    browser.get(f"http://127.0.0.1:{port}/api/v1/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert browser.get(f"http://127.0.0.1:{port}/api/v1/runs").status_code == 401  # nothing open
            first = browser.get(link)
            assert first.status_code == 303 and first.headers["location"] == "/account/password"
            assert browser.get(f"http://127.0.0.1:{port}/api/v1/me").json()["role"] == "admin"
        assert httpx.get(link, timeout=30).status_code == 401  # used once: no second sign-in
    finally:
        process.terminate()
        process.wait(30)


def test_a_first_start_on_a_busy_port_creates_no_admin_and_names_the_way_back_in(tmp_path):
    home = tmp_path / "home"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        busy = _oar("studio", "--port", str(port), home=home)
    assert busy.returncode == 1, busy.stderr
    assert "already in use" in busy.stderr and "oar studio admin reset-link admin" in busy.stderr
    assert "/signin/link/" not in busy.stderr + busy.stdout and "Traceback" not in busy.stderr
    from oar.studio.config import StudioConfig
    from oar.studio.server import bootstrap
    from oar.studio.services import Services

    services = Services.build(StudioConfig(home=home, database_url=f"sqlite:///{home / 'hub.db'}"))
    try:  # the next start is still a first start: it makes the admin and prints its link
        assert services.accounts.count_users() == 0
        assert "/signin/link/oar_" in bootstrap(services).link
    finally:
        services.close()


def test_an_admin_who_lost_the_link_gets_a_new_one_and_the_old_one_dies(tmp_path):
    from oar.studio.config import StudioConfig
    from oar.studio.services import Services

    home = tmp_path / "home"
    made = _oar("studio", "admin", "create", "admin", home=home)
    assert made.returncode == 0, made.stderr
    lost = re.search(r"/signin/link/(\S+)", made.stderr).group(1)
    again = _oar("studio", "admin", "create", "admin", home=home)
    assert again.returncode == 1 and "already exists" in again.stderr and "reset-link admin" in again.stderr
    reset = _oar("studio", "admin", "reset-link", "admin", home=home)
    assert reset.returncode == 0, reset.stderr
    fresh = re.search(r"http://127\.0\.0\.1:8600/signin/link/(\S+)", reset.stderr).group(1)
    nobody = _oar("studio", "admin", "reset-link", "nobody", home=home)
    assert nobody.returncode == 1 and "no user 'nobody'" in nobody.stderr
    services = Services.build(StudioConfig(home=home, database_url=f"sqlite:///{home / 'hub.db'}"))
    try:
        assert services.accounts.redeem_sign_in_link(lost) is None
        assert services.accounts.redeem_sign_in_link(fresh).username == "admin"
    finally:
        services.close()


def test_login_points_the_hub_commands_at_the_studio_and_logout_back_home(tmp_path, numeric_package):
    world = build_world(f"sqlite:///{tmp_path / 'studio' / 'hub.db'}", tmp_path / "studio", numeric_package)
    cli_home = tmp_path / "cli"  # the CLI's own OAR_HOME: an empty local hub
    with serving(world.app) as url:
        refused = _oar("login", url, "--token", "oar_000000000000_wrong", home=cli_home)
        assert refused.returncode == 1 and "refused the token" in refused.stderr
        logged_in = _oar("login", url, "--token", world.tokens["alice"], home=cli_home)
        assert logged_in.returncode == 0 and "as alice (member)" in logged_in.stderr
        assert (cli_home / "studio-login.json").stat().st_mode & 0o777 == 0o600
        listed = _oar("models", "list", home=cli_home)
        assert listed.returncode == 0 and "sentiment" in listed.stdout and "digits" in listed.stdout
        moved = _oar("models", "alias", "sentiment@production", "2", home=cli_home)
        assert moved.returncode == 0, moved.stderr
        shown = _oar("models", "show", "sentiment@production", home=cli_home)
        assert '"version": 2' in shown.stdout
        history = _oar("models", "aliases", "sentiment", home=cli_home)
        assert "alice" in history.stdout and "@production" in history.stdout
        missing = _oar("models", "show", "nope@production", home=cli_home)
        assert missing.returncode == 1 and "no model 'nope'" in missing.stderr and "Traceback" not in missing.stderr
    assert world.hub.aliases.history("sentiment")[0].actor == "alice"
    assert _oar("logout", home=cli_home).returncode == 0
    local = _oar("models", "list", home=cli_home)
    assert local.returncode == 0 and "sentiment" not in local.stdout
    world.app.state.services.close()
