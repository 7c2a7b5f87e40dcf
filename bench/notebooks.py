"""Notebooks on the studio's JupyterHub: start-to-first-answer, memory of an idle server, 5 users at once.

Starts a real ``NotebookHub`` (JupyterHub, configurable-http-proxy, one system account per user: run as
root) and measures, through the proxy:

- ``start -> 1+1``: from the start request to a kernel answering ``1+1`` (server spawn, JupyterLab
  start, kernel start, one execute), cold (first user) and warm (a second start of a stopped server);
- the memory (RSS, summed over the server's process tree) of an idle server, and with one kernel;
- 5 users started at the same moment: time until every one of them answered ``1+1``.

The baseline, run beside it on the same machine: a kernel started and asked ``1+1`` by
``jupyter_client`` directly (no hub, no proxy, no JupyterLab). Ratios are to that baseline.

    sudo python bench/notebooks.py [--users 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from oar.notebooks import NotebookSettings
from oar.notebooks.hub import NotebookHub
from oar.notebooks.remote import execute, start_kernel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oar-bench-notebooks-", dir="/tmp"))
    os.chmod(work, 0o755)
    prefix = f"b{os.getpid() % 10000}-"
    settings = NotebookSettings(home_root=work / "homes", user_prefix=prefix, grant_traverse=True)
    hub = NotebookHub(work / "state", settings, studio_url="http://127.0.0.1:9", ticket_key="k" * 43)
    try:
        baseline = bare_kernel_seconds()
        print(f"baseline: jupyter_client kernel start + 1+1: {baseline:.2f} s")
        started = time.monotonic()
        hub.ensure_running()
        print(f"hub + proxy up: {time.monotonic() - started:.2f} s")
        cold = start_to_answer(hub, "user0")
        print(f"start -> 1+1 through the proxy, cold: {cold:.2f} s ({cold / baseline:.1f}x baseline)")
        print(f"RSS of the server with one idle kernel: {server_rss_mib(hub, 'user0'):.0f} MiB")
        stop(hub, "user0")
        warm = start_to_answer(hub, "user0")
        print(f"start -> 1+1 through the proxy, warm restart: {warm:.2f} s ({warm / baseline:.1f}x baseline)")
        names = [f"user{i}" for i in range(1, args.users + 1)]
        started = time.monotonic()
        with ThreadPoolExecutor(len(names)) as pool:
            each = list(pool.map(lambda n: start_to_answer(hub, n), names))
        whole = time.monotonic() - started
        print(f"{len(names)} users at once: all answered in {whole:.2f} s (each {min(each):.1f}-{max(each):.1f} s)")
        rss = [server_rss_mib(hub, n) for n in names]
        print(f"RSS per server with one kernel: {min(rss):.0f}-{max(rss):.0f} MiB")
    finally:
        hub.shutdown()
        for line in Path("/etc/passwd").read_text().splitlines():
            if line.startswith(prefix):
                subprocess.run(["userdel", line.split(":")[0]], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def start_to_answer(hub: NotebookHub, name: str) -> float:
    headers = {"authorization": f"token {(hub.state_dir / 'service_token').read_text().strip()}"}
    started = time.monotonic()
    hub.api("POST", f"/users/{name}", ok=(201, 409))
    hub.api("POST", f"/users/{name}/server", ok=(201, 202))
    while not (hub.api("GET", f"/users/{name}")["servers"].get("") or {}).get("ready"):
        time.sleep(0.1)
    url = f"{hub.url}/user/{name}"
    outcome = execute(url, headers, start_kernel(url, headers), "1+1")
    assert outcome.result == "2", outcome
    return time.monotonic() - started


def stop(hub: NotebookHub, name: str) -> None:
    hub.api("DELETE", f"/users/{name}/server", ok=(202, 204))
    while hub.api("GET", f"/users/{name}")["servers"]:
        time.sleep(0.1)


def server_rss_mib(hub: NotebookHub, name: str) -> float:
    pid = hub.api("GET", f"/users/{name}")["servers"][""]["state"]["pid"]
    out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(pid), "-p", str(pid)], capture_output=True, text=True)
    return sum(int(v) for v in out.stdout.split()) / 1024


def bare_kernel_seconds() -> float:
    from jupyter_client.manager import start_new_kernel

    started = time.monotonic()
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        reply = client.execute_interactive("1+1", timeout=60)
        assert reply["content"]["status"] == "ok"
        return time.monotonic() - started
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
