"""``oar deployments list|deploy|show|undeploy``: Model-as-a-Service on the studio you are logged in to."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.console import Console

from oar._core.errors import OarError

console = Console(stderr=True)
deployments_app = typer.Typer(help="Deployments on the studio (after `oar login`).", no_args_is_help=True)


def _studio():  # type: ignore[no-untyped-def]
    from oar.cli.studio_remote import studio_hub

    studio = studio_hub()
    if studio is None:
        raise OarError("deployments run on a studio: `oar login URL --username NAME` first")
    return studio


def _line(d: dict[str, Any]) -> str:
    replicas = d.get("replicas")
    count = (
        "1 process" if not replicas else f"{replicas[0]}" + (f"-{replicas[1]}" if replicas[1] != replicas[0] else "")
    )
    return f"{d['id']}  {d['ref']}  v{d['version']}  {d['status']}  {d['endpoint'] or '-'}  replicas {count}"


def _replicas(value: str | None) -> Any:
    """``2`` -> 2, ``1-4`` -> [1, 4]; the studio checks the bounds and says what is wrong."""
    if value is None:
        return None
    low, sep, high = value.partition("-")
    try:
        return [int(low), int(high)] if sep else int(value)
    except ValueError:
        raise OarError(f"--replicas must be N or MIN-MAX, not {value!r}") from None


@deployments_app.command("list")
def list_deployments() -> None:
    """Your studio's live deployments."""
    for deployment in _studio().get("/deployments"):
        typer.echo(_line(deployment))


@deployments_app.command("deploy")
def deploy(
    model: str = typer.Argument(..., help="name@alias, name:version or name"),
    replicas: str = typer.Option(None, help="N, or MIN-MAX to autoscale; above one: replicas behind one balancer"),
    wait: bool = typer.Option(True, help="wait until it serves"),
) -> None:
    """Deploy a model; prints its endpoint once it serves."""
    studio = _studio()
    deployment = studio.post("/deployments", {"model": model, "replicas": _replicas(replicas)})
    deadline = time.monotonic() + 300
    while wait and deployment["status"] == "starting" and time.monotonic() < deadline:
        time.sleep(1)
        deployment = studio.get(f"/deployments/{deployment['id']}")
    typer.echo(_line(deployment))
    if deployment["status"] == "failed":
        console.print(deployment["message"], highlight=False)
        raise typer.Exit(1)


@deployments_app.command("show")
def show(deployment_id: str) -> None:
    """One deployment, and each replica's node and figures (one second of its metrics)."""
    studio = _studio()
    typer.echo(_line(studio.get(f"/deployments/{deployment_id}")))
    for replica in studio.get(f"/deployments/{deployment_id}/figures").get("replicas", []):
        rate, p99 = replica.get("requests_per_second"), replica.get("p99_ms")
        figures = f"{rate:.1f} req/s" if rate is not None else "-"
        figures += f", p99 {p99:.1f} ms" if p99 is not None else ""
        typer.echo(
            f"  {replica['name']}  {replica['status']}  node {replica['node']}  {replica['endpoint']}  {figures}"
        )


@deployments_app.command("undeploy")
def undeploy(deployment_id: str) -> None:
    """Stop a deployment (in-flight requests finish)."""
    _studio()._call("DELETE", f"/deployments/{deployment_id}")
    console.print(f"deployment {deployment_id} stopped", highlight=False)
