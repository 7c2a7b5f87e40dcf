"""/api/v1/notebooks: the caller's own JupyterLab server on the studio's JupyterHub."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from oar.studio.api.common import ERRORS, Caller, Studio
from oar.studio.services.notebooks import NotebookServer

router = APIRouter(prefix="/notebooks", tags=["notebooks"], responses=ERRORS)


class NotebookOut(BaseModel):
    user: str
    status: str = Field(description="stopped | starting | running | stopping | failed")
    message: str
    started_at: str | None
    last_activity: str | None
    open_url: str = Field(description="the studio page that signs the browser in to JupyterLab")


def notebook_out(server: NotebookServer) -> NotebookOut:
    return NotebookOut(**server.__dict__, open_url="/notebooks/open")


@router.get("", response_model=NotebookOut)
def status(studio: Studio, who: Caller) -> NotebookOut:
    return notebook_out(studio.notebooks.status(who))


@router.post("/start", response_model=NotebookOut, responses={202: {"description": "starting"}})
def start(studio: Studio, who: Caller, response: Response) -> NotebookOut:
    """Start the caller's server (202 while it starts, 200 when it already runs). Members and admins only."""
    server = studio.notebooks.start(who)
    response.status_code = 202 if server.status == "starting" else 200
    return notebook_out(server)


@router.post("/stop", response_model=NotebookOut)
def stop(studio: Studio, who: Caller) -> NotebookOut:
    """Stop the caller's server; the files in its workspace stay."""
    return notebook_out(studio.notebooks.stop(who))
