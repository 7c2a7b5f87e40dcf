"""/api/v1/notebooks: the caller's own JupyterLab server on the studio's JupyterHub."""

from __future__ import annotations

from datetime import datetime

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


class TutorialOut(BaseModel):
    name: str
    title: str
    summary: str
    done_at: datetime | None = Field(description="when this user last ran it to its last cell")


class OpenIn(BaseModel):
    kind: str = Field(description="dataset | model | deployment")
    ref: str = Field(max_length=300, description="NAME:VERSION, or a deployment id")


class OpenOut(BaseModel):
    url: str = Field(description="open it in the browser: a one-time sign-in to JupyterLab, then the notebook")


@router.get("/tutorials", response_model=list[TutorialOut])
def tutorials(studio: Studio, who: Caller) -> list[TutorialOut]:
    """The learning path, with the caller's progress."""
    return [TutorialOut(**t.__dict__) for t in studio.tutorials.list(who)]


@router.post("/tutorials/{name}/done", response_model=TutorialOut)
def tutorial_done(name: str, studio: Studio, who: Caller) -> TutorialOut:
    """Called by a tutorial's last cell, with the kernel's (the user's own) token."""
    return TutorialOut(**studio.tutorials.mark_done(who, name).__dict__)


@router.post("/tutorials/{name}/open", response_model=OpenOut)
def open_tutorial(name: str, studio: Studio, who: Caller) -> OpenOut:
    """Copy the tutorial into the caller's workspace (once; later opens keep their edits) and open it."""
    return OpenOut(url=studio.tutorials.open_copy(who, name))


@router.post("/open", response_model=OpenOut)
def open_in_notebook(body: OpenIn, studio: Studio, who: Caller) -> OpenOut:
    """A notebook pre-filled with code for a dataset version, a model version or a deployment."""
    return OpenOut(url=studio.starters.open(who, body.kind, body.ref))
