"""The web UI: server-rendered Jinja2 pages, one views module per resource, assets served from the package.

Every asset comes from the installed package (Plotly's JS from its wheel): the UI works air-gapped.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

from oar._core.errors import NotFoundError
from oar.studio.web.assets import StaticAssets
from oar.studio.web.views import (
    admin,
    auth,
    competitions,
    datasets,
    deployments,
    home,
    jobs,
    models,
    notebooks,
    runs,
    solutions,
    storage,
    tokens,
)

STATIC = Path(__file__).parent / "static"
VIEWS = (
    home,
    auth,
    datasets,
    models,
    runs,
    jobs,
    deployments,
    competitions,
    notebooks,
    solutions,
    storage,
    tokens,
    admin,
)


def plotly_js() -> Path:
    """plotly.min.js inside the installed plotly wheel."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("plotly is not installed (pip install 'oar-platform[studio]')")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


def mount_web(app: FastAPI) -> None:
    assets = StaticAssets(STATIC)

    @app.api_route("/static/vendor/plotly.min.js", methods=["GET", "HEAD"], include_in_schema=False)
    def plotly(request: Request) -> Response:
        return assets.response(request, plotly_js(), "public, max-age=86400")

    @app.api_route("/static/{name:path}", methods=["GET", "HEAD"], include_in_schema=False)
    def static(name: str, request: Request) -> Response:
        return assets.response(request, assets.path_of(name))

    @app.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
    def favicon(request: Request) -> Response:
        return assets.response(request, assets.path_of("favicon.ico"), "public, max-age=86400")

    for module in VIEWS:
        app.include_router(module.router, include_in_schema=False)
