"""``oar studio``: the platform server and web UI; ``oar studio admin create``; ``oar login``.

Everything here imports the studio lazily: the CLI works without the [studio] extra.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from oar._core.errors import ConflictError, OarError
from oar._core.settings import oar_home

console = Console(stderr=True)
studio_app = typer.Typer(help="The platform server and web UI (API under /api/v1).", invoke_without_command=True)
admin_app = typer.Typer(help="Studio accounts.", no_args_is_help=True)
studio_app.add_typer(admin_app, name="admin")


def _config(  # type: ignore[no-untyped-def]
    database_url: str | None,
    host: str = "127.0.0.1",
    port: int = 8600,
    secure_cookies: bool = False,
    ray_address: str | None = None,
):
    try:
        from oar.studio.config import StudioConfig
    except ImportError as exc:
        raise OarError(f"the studio needs {exc.name}: pip install 'oar-platform[studio]'") from exc
    return StudioConfig(
        database_url=database_url, host=host, port=port, secure_cookies=secure_cookies, ray_address=ray_address
    )


@studio_app.callback()
def studio(
    ctx: typer.Context,
    database_url: str = typer.Option(None, envvar="OAR_DATABASE_URL", help="e.g. postgresql+psycopg://u:p@host/db"),
    host: str = typer.Option("127.0.0.1", help="bind address; loopback by default"),
    port: int = typer.Option(8600, help="port"),
    secure_cookies: bool = typer.Option(False, help="mark the session cookie Secure (behind HTTPS)"),
    ray_address: str = typer.Option(
        None, envvar="OAR_RAY_ADDRESS", help="place deployments' replicas on this Ray cluster (else on this machine)"
    ),
) -> None:
    """Run the studio: API + web UI in one process, on SQLite in OAR_HOME unless --database-url is given."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"database_url": database_url, "host": host, "port": port}  # the links admin commands print
        return
    config = _config(database_url, host, port, secure_cookies, ray_address)
    if database_url:  # the `oar serve` processes of deployments read the same database
        os.environ["OAR_DATABASE_URL"] = database_url
    try:
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401
    except ImportError as exc:
        raise OarError(f"the studio needs {exc.name}: pip install 'oar-platform[studio]'") from exc
    from oar.studio.server import run

    run(config, announce=lambda text: console.print(text, soft_wrap=True, highlight=False))


@studio_app.command("stop")
def studio_stop(
    ctx: typer.Context,
    everything: bool = typer.Option(False, "--all", help="stop every deployment's server too, for good"),
) -> None:
    """Stop the studio running from this OAR_HOME. Its deployments keep serving (the next start adopts them)
    unless --all, which stops them as well and marks them stopped."""
    from oar.studio.server import stop

    stop(_config(**ctx.obj), everything, announce=lambda text: console.print(text, soft_wrap=True, highlight=False))


@admin_app.command("create")
def admin_create(
    ctx: typer.Context,
    username: str = typer.Argument("admin"),
    password_stdin: bool = typer.Option(False, help="read the password from standard input"),
) -> None:
    """Create an admin; prints a one-time sign-in link unless a password comes on stdin."""
    from oar.studio.server import RESET_HINT, create_admin
    from oar.studio.services import Services

    config = _config(**ctx.obj)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    services = Services.build(config)
    try:
        made = create_admin(services, username, password)
    except ConflictError as exc:
        raise ConflictError(f"{exc}; {RESET_HINT.format(name=username)}") from None
    finally:
        services.close()
    console.print(
        f"admin '{made.username}' created" + (f"; one-time sign-in link:\n  {made.link}" if made.link else ""),
        soft_wrap=True,
        highlight=False,
    )


@admin_app.command("reset-link")
def admin_reset_link(ctx: typer.Context, username: str = typer.Argument(..., help="the user, e.g. admin")) -> None:
    """Print a new one-time sign-in link for an existing user (a lost first-start link, a forgotten password);
    signing in with it lets the user set a new password. Older unused links stop working."""
    from oar.studio.server import reset_link
    from oar.studio.services import Services

    services = Services.build(_config(**ctx.obj))
    try:
        link = reset_link(services, username)
    finally:
        services.close()
    console.print(f"one-time sign-in link for '{username}' (valid 24 h):\n  {link}", soft_wrap=True, highlight=False)


# --- oar login: a token for the CLI -------------------------------------------------------------


def credentials_path() -> Path:
    return oar_home() / "studio-login.json"


def load_login() -> dict[str, str] | None:
    """The studio the CLI is logged in to (``OAR_STUDIO_URL`` + ``OAR_STUDIO_TOKEN`` win over the file)."""
    if os.environ.get("OAR_STUDIO_URL") and os.environ.get("OAR_STUDIO_TOKEN"):
        return {"url": os.environ["OAR_STUDIO_URL"], "token": os.environ["OAR_STUDIO_TOKEN"]}
    path = credentials_path()
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def login(
    url: str = typer.Argument(..., help="the studio, e.g. http://127.0.0.1:8600"),
    token: str = typer.Option(None, help="an API token made on the studio's tokens page"),
    username: str = typer.Option(None, help="sign in with a username (the password is asked for)"),
) -> None:
    """Store a token so that `oar datasets|runs|models ...` read this studio instead of the local hub."""
    import httpx

    url = url.rstrip("/")
    try:
        if token is None:
            if username is None:
                raise OarError("give --token TOKEN or --username NAME")
            password = typer.prompt("password", hide_input=True)
            answer = httpx.post(
                f"{url}/api/v1/auth/token", json={"username": username, "password": password}, timeout=30
            )
            if answer.status_code != 201:
                raise OarError(f"sign-in refused: {_message(answer)}")
            token = answer.json()["token"]
        me = httpx.get(f"{url}/api/v1/me", headers={"authorization": f"Bearer {token}"}, timeout=30)
    except httpx.HTTPError as exc:
        raise OarError(f"cannot reach the studio at {url}: {exc}") from exc
    if me.status_code != 200:
        raise OarError(f"the studio refused the token: {_message(me)}")
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"url": url, "token": token}, out)
    console.print(f"logged in to {url} as {me.json()['username']} ({me.json()['role']})")


def logout() -> None:
    """Forget the stored studio token: hub commands read the local hub again."""
    credentials_path().unlink(missing_ok=True)
    console.print("logged out")


def _message(response) -> str:  # type: ignore[no-untyped-def]
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
