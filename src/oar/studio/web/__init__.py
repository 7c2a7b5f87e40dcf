"""The web UI: server-rendered Jinja2 pages, one views module per resource, assets served from the package.

Every asset comes from the installed package (Plotly's JS from its wheel): the UI works air-gapped.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from oar._core.errors import NotFoundError
from oar.studio.web.views import admin, auth, datasets, deployments, home, jobs, models, notebooks, runs, tokens

STATIC = Path(__file__).parent / "static"
VIEWS = (home, auth, datasets, models, runs, jobs, deployments, notebooks, tokens, admin)


def plotly_js() -> Path:
    """plotly.min.js inside the installed plotly wheel."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("plotly is not installed (pip install 'oar[studio]')")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


def mount_web(app: FastAPI) -> None:
    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in VIEWS:
        app.include_router(module.router, include_in_schema=False)
