"""``oar notebooks start|stop|status``: your own JupyterLab on the studio you are logged in to (``oar login``)."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.console import Console

from oar._core.errors import OarError

console = Console(stderr=True)
notebooks_app = typer.Typer(help="Your JupyterLab on the studio (after `oar login`).", no_args_is_help=True)


def _studio():  # type: ignore[no-untyped-def]
    from oar.cli.studio_remote import studio_hub

    studio = studio_hub()
    if studio is None:
        raise OarError("notebooks run on a studio: `oar login URL --username NAME` first")
    return studio


def _show(server: dict[str, Any], url: str) -> None:
    console.print(f"{server['user']}: {server['status']} - {server['message']}", highlight=False)
    if server["status"] == "running":
        console.print(f"open {url}{server['open_url']} in a browser signed in to the studio", highlight=False)


@notebooks_app.command("status")
def status() -> None:
    """Is your notebook server running?"""
    studio = _studio()
    _show(studio.get("/notebooks"), studio.url)


@notebooks_app.command("start")
def start(wait: bool = typer.Option(True, help="wait until JupyterLab answers")) -> None:
    """Start your notebook server (your files from earlier sessions are still there)."""
    studio = _studio()
    server = studio.post("/notebooks/start")
    deadline = time.monotonic() + 180
    while wait and server["status"] == "starting" and time.monotonic() < deadline:
        time.sleep(1)
        server = studio.get("/notebooks")
    _show(server, studio.url)
    if server["status"] == "failed":
        raise typer.Exit(1)


@notebooks_app.command("stop")
def stop() -> None:
    """Stop your notebook server; its files stay."""
    studio = _studio()
    _show(studio.post("/notebooks/stop"), studio.url)
