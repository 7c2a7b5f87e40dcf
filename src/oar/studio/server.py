"""Run the studio: bootstrap the first admin (a one-time sign-in link), then serve the app with uvicorn."""

from __future__ import annotations

from dataclasses import dataclass

from oar.studio.config import StudioConfig
from oar.studio.services import Services


@dataclass(frozen=True)
class AdminCreated:
    username: str
    link: str | None  # None when a password was given


def create_admin(services: Services, username: str = "admin", password: str | None = None) -> AdminCreated:
    """An admin account; without a password it gets a one-time sign-in link (24 h) instead."""
    user = services.accounts.create_user(username, "admin", password)
    if password:
        return AdminCreated(user.username, None)
    token = services.accounts.sign_in_link_token(user.id)
    return AdminCreated(user.username, f"{services.config.base_url}/signin/link/{token}")


def bootstrap(services: Services) -> AdminCreated | None:
    """On the first start (no users at all) make the admin and return its sign-in link."""
    if services.accounts.count_users():
        return None
    return create_admin(services)


def run(config: StudioConfig, announce=print) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from oar.studio.app import create_app

    app = create_app(config)
    first = bootstrap(app.state.services)
    if first is not None:
        announce(f"first start: sign in as '{first.username}' with this one-time link (valid 24 h):\n  {first.link}")
    announce(f"oar studio on {config.base_url}  (database: {_redacted(config.url)})")
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", timeout_graceful_shutdown=10)


def _redacted(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
