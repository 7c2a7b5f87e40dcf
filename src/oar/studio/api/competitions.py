"""/api/v1/competitions: create (admins and organizers), the hidden inputs, submissions (a predictions file or a hub
package), final selections, the public board (live) and the private one (after the end), CSV exports."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from oar._core.errors import InvalidInputError
from oar.competitions.predictions import MAX_BYTES
from oar.competitions.service import Entry, organizers_of
from oar.competitions.store import Competition, now
from oar.studio.api.common import ERRORS, Caller, Studio, Timestamp
from oar.studio.services.competitions import SubmissionView, leaderboard_csv

router = APIRouter(prefix="/competitions", tags=["competitions"], responses=ERRORS)


class PhaseOut(BaseModel):
    name: str
    start: datetime
    end: datetime


class CompetitionOut(BaseModel):
    name: str
    title: str
    description: str
    owner: str
    organizers: list[str] = Field(description="its creator, then the users they added")
    dataset_name: str
    dataset_version: int
    task: str
    metric: str
    labels: list[str]
    test_size: int
    public_size: int
    phases: list[PhaseOut]
    limits: dict[str, int]
    weights: dict[str, float]
    sandbox: dict[str, float]
    starts_at: Timestamp
    ends_at: Timestamp
    ended: bool
    open: bool


class SubmissionOut(BaseModel):
    id: str
    user: str
    kind: str
    source: str
    note: str
    status: str
    error: str
    public_score: float | None
    private_score: float | None = Field(description="null until the competition has ended")
    details: dict[str, Any]
    selected: bool
    submitted_at: Timestamp
    scored_at: Timestamp | None


class EntryOut(BaseModel):
    rank: int
    user: str
    submission_id: str
    score: float
    entries: int
    submitted_at: Timestamp
    details: dict[str, Any] | None


class OrganizersIn(BaseModel):
    users: list[str] = Field(max_length=50, description="the organizers besides the creator")


class EditIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # every key is checked by the service: unknown ones are named


class SelectionIn(BaseModel):
    submission_ids: list[str] = Field(max_length=20)


class PackageIn(BaseModel):
    model: str | None = Field(None, min_length=1, max_length=300, description="NAME or NAME:VERSION of a hub model")
    reproduce: str | None = Field(None, min_length=1, max_length=40, description="a run id: re-train it, score both")
    note: str = Field("", max_length=500)


def competition_out(c: Competition) -> CompetitionOut:
    metric = c.spec["metric"]
    at = now()
    return CompetitionOut(
        name=c.name,
        title=c.title,
        description=c.spec.get("description", ""),
        owner=c.owner,
        organizers=organizers_of(c),
        dataset_name=c.dataset_name,
        dataset_version=c.dataset_version,
        task=c.spec.get("task", ""),
        metric=metric if isinstance(metric, str) else f"{metric['file']}:{metric['function']}",
        labels=c.spec["label_names"],
        test_size=c.test_size,
        public_size=c.public_size,
        phases=[PhaseOut(**p) for p in c.spec["phases"]],
        limits=c.spec["limits"],
        weights=c.spec["weights"],
        sandbox=c.spec["sandbox"],
        starts_at=c.starts_at,
        ends_at=c.ends_at,
        ended=c.ended(at),
        open=c.open_phase(at) is not None,
    )


def submission_out(s: SubmissionView) -> SubmissionOut:
    return SubmissionOut(**s.__dict__)


def entry_out(e: Entry) -> EntryOut:
    return EntryOut(
        rank=e.rank,
        user=e.user,
        submission_id=e.submission_id,
        score=e.score,
        entries=e.entries,
        submitted_at=e.submitted_at,
        details=e.details,
    )


@router.get("", response_model=list[CompetitionOut])
def list_competitions(studio: Studio, who: Caller) -> list[CompetitionOut]:
    return [competition_out(c) for c in studio.competitions.list(who)]


@router.post("", response_model=CompetitionOut, status_code=201)
async def create(request: Request, studio: Studio, who: Caller) -> CompetitionOut:
    """The competition file's content as JSON (name, dataset, metric, phases, limits, ...)."""
    try:
        raw = json.loads(await request.body())
    except ValueError:
        raise InvalidInputError("the body is not JSON: send the competition's fields as a JSON object") from None
    return competition_out(studio.competitions.create(who, raw, "the competition"))


@router.get("/{name}", response_model=CompetitionOut)
def get(name: str, studio: Studio, who: Caller) -> CompetitionOut:
    return competition_out(studio.competitions.get(who, name))


@router.post("/{name}/close", response_model=CompetitionOut)
def close(name: str, studio: Studio, who: Caller) -> CompetitionOut:
    """End the competition now: submissions stop and the private board is revealed."""
    return competition_out(studio.competitions.close(who, name))


@router.get("/{name}/inputs", response_class=FileResponse)
def inputs(name: str, studio: Studio, who: Caller) -> FileResponse:
    """The test inputs as JSON Lines (``id`` and ``text`` or ``x``); labels are never served."""
    path = studio.competitions.inputs(who, name)
    return FileResponse(path, media_type="application/x-ndjson", filename=f"{name}-test-inputs.jsonl")


@router.post("/{name}/submissions", response_model=SubmissionOut, status_code=202)
async def submit(name: str, request: Request, studio: Studio, who: Caller) -> SubmissionOut:
    """A predictions file (multipart ``file``, CSV or JSONL, optional ``note``), or JSON ``{"model": "NAME:VER"}``,
    or ``{"reproduce": "RUN_ID"}`` (the run's config is re-trained, then both models are scored)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInputError("send the predictions as the multipart field 'file'")
        content = await upload.read(MAX_BYTES + 1)
        view = studio.competitions.submit_file(
            who, name, content, upload.filename or "predictions.csv", str(form.get("note") or "")
        )
        return submission_out(view)
    try:
        body = PackageIn.model_validate_json(await request.body())
    except ValueError:
        body = PackageIn()
    if (body.model is None) == (body.reproduce is None):
        raise InvalidInputError(
            'send a predictions file (multipart "file"), or JSON {"model": "NAME:VERSION"} or {"reproduce": "RUN"}'
        )
    if body.reproduce is not None:
        return submission_out(studio.competitions.submit_reproduction(who, name, body.reproduce, body.note))
    return submission_out(studio.competitions.submit_package(who, name, str(body.model), body.note))


@router.get("/{name}/submissions", response_model=list[SubmissionOut])
def mine(name: str, studio: Studio, who: Caller) -> list[SubmissionOut]:
    """The caller's own submissions, newest first, with their errors."""
    return [submission_out(s) for s in studio.competitions.mine(who, name)]


@router.get("/{name}/quota")
def quota(name: str, studio: Studio, who: Caller) -> dict[str, int]:
    return studio.competitions.quota(who, name)


@router.post("/{name}/submissions/{submission_id}/cancel", response_model=SubmissionOut)
def cancel(name: str, submission_id: str, studio: Studio, who: Caller) -> SubmissionOut:
    return submission_out(studio.competitions.cancel(who, name, submission_id))


@router.put("/{name}/selection", response_model=list[SubmissionOut])
def select(name: str, body: SelectionIn, studio: Studio, who: Caller) -> list[SubmissionOut]:
    """The final submissions that count on the private board (else the best public ones)."""
    return [submission_out(s) for s in studio.competitions.select(who, name, body.submission_ids)]


@router.get("/{name}/leaderboard", response_model=list[EntryOut])
def leaderboard(
    name: str, studio: Studio, who: Caller, board: str = Query("public", pattern="^(public|private)$")
) -> list[EntryOut]:
    return [entry_out(e) for e in studio.competitions.leaderboard(who, name, board)]


@router.get("/{name}/leaderboard.csv", response_class=PlainTextResponse)
def leaderboard_export(
    name: str, studio: Studio, who: Caller, board: str = Query("public", pattern="^(public|private)$")
) -> PlainTextResponse:
    entries = studio.competitions.leaderboard(who, name, board)
    headers = {"content-disposition": f'attachment; filename="{name}-{board}-leaderboard.csv"'}
    return PlainTextResponse(leaderboard_csv(entries, board), media_type="text/csv", headers=headers)


@router.patch("/{name}", response_model=CompetitionOut)
def edit(name: str, body: EditIn, studio: Studio, who: Caller) -> CompetitionOut:
    """Organizers (and admins): change ``title``, ``description``, ``limits`` or ``weights``, checked as the
    competition file is; the hidden split, metric and phases stay."""
    return competition_out(studio.competitions.edit(who, name, body.model_dump()))


@router.put("/{name}/organizers", response_model=CompetitionOut)
def set_organizers(name: str, body: OrganizersIn, studio: Studio, who: Caller) -> CompetitionOut:
    """The creator (or an admin) chooses the other organizers; someone who has submitted cannot be one."""
    return competition_out(studio.competitions.set_organizers(who, name, body.users))


@router.post("/{name}/rescore", response_model=list[SubmissionOut])
def rescore(name: str, studio: Studio, who: Caller) -> list[SubmissionOut]:
    """Organizers (and admins): score every scored submission again, each by a new scoring job."""
    return [submission_out(s) for s in studio.competitions.rescore(who, name)]


@router.get("/{name}/scores", response_model=list[SubmissionOut])
def scores(name: str, studio: Studio, who: Caller) -> list[SubmissionOut]:
    """Organizers only: every submission with its public and private score, newest first."""
    return [submission_out(s) for s in studio.competitions.all_submissions(who, name)]
