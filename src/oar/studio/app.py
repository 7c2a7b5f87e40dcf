"""The studio's ASGI app: API under /api/v1 (OpenAPI at /api/v1/openapi.json), pages, static assets.

>>> app = create_app(StudioConfig(home=Path("/tmp/studio")))   # then: uvicorn.run(app)
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from oar.hub import Hub
from oar.studio import errors
from oar.studio.api import API_PREFIX, api_router
from oar.studio.config import StudioConfig
from oar.studio.services import Services
from oar.studio.session_cookie import ServerSessions
from oar.studio.web import mount_web

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def create_app(config: StudioConfig | None = None, hub: Hub | None = None) -> FastAPI:
    config = config or StudioConfig()
    services = Services.build(config, hub)

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        services.deployments.resume()
        services.notebooks.resume()
        yield
        services.close()

    app = FastAPI(
        title="oar studio",
        version="1",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = services
    app.add_middleware(
        ServerSessions,
        store=services.accounts.browser_sessions,
        secret=config.secret_key().decode(),
        https_only=config.secure_cookies,
    )

    app.add_middleware(SecurityHeaders)
    errors.install(app)
    app.include_router(api_router())
    mount_web(app)
    return app


class SecurityHeaders:
    """Pure ASGI (no per-request task, unlike ``@app.middleware``): CSP, no sniffing, no framing; and
    ``Cache-Control: no-store`` on everything but the static assets."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message) -> None:  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in _HEADERS if not static else _HEADERS[:-1]:
                    if key not in present:
                        headers.append((key, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


_HEADERS = (
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
