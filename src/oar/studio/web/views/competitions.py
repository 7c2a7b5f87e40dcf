"""Competition pages: the list (and, for admins, a form taking the competition file), one competition with
its boards, the caller's submissions and quota, the submission and final-selection forms; closing."""

from __future__ import annotations

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from oar._core.errors import InvalidInputError, OarError
from oar.competitions.predictions import MAX_BYTES
from oar.competitions.store import now
from oar.studio.principal import require_user, services
from oar.studio.web.templating import checked_form, flash, render

router = APIRouter()


@router.get("/competitions")
def competition_list(request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    return render(request, "competitions/list.html", competitions=services(request).competitions.list(who), now=now())


@router.post("/competitions")
async def create(request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    form = await checked_form(request)
    try:
        raw = yaml.safe_load(form.get("spec", ""))
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"the competition file is not valid YAML: {str(exc).splitlines()[0]}") from None
    competition = services(request).competitions.create(who, raw, "the competition file")
    flash(request, f"competition {competition.name} created: {competition.test_size} hidden test rows")
    return RedirectResponse(f"/competitions/{competition.name}", 303)


@router.get("/competitions/{name}")
def competition_detail(name: str, request: Request):  # type: ignore[no-untyped-def]
    studio, who = services(request), require_user(request)
    competition = studio.competitions.get(who, name)
    at = now()
    ended = competition.ended(at)
    organizer = studio.competitions.is_organizer(who, competition)
    return render(
        request,
        "competitions/detail.html",
        c=competition,
        ended=ended,
        open=competition.open_phase(at) is not None,
        organizer=organizer,
        organizers=studio.competitions.organizers(name),
        manages=organizer or who.is_admin,
        public=studio.competitions.leaderboard(who, name, "public"),
        private=studio.competitions.leaderboard(who, name, "private") if ended or organizer else None,
        everyone=studio.competitions.all_submissions(who, name) if organizer else None,
        mine=studio.competitions.mine(who, name),
        quota=studio.competitions.quota(who, name),
        now=at,
    )


@router.post("/competitions/{name}/submit")
async def submit(name: str, request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    fields = await checked_form(request)
    form = await request.form()
    upload = form.get("file")
    studio = services(request)
    try:
        if fields.get("reproduce", "").strip():
            run_id = fields["reproduce"].strip()
            view = studio.competitions.submit_reproduction(who, name, run_id, fields.get("note", ""))
        elif fields.get("model", "").strip():
            view = studio.competitions.submit_package(who, name, fields["model"].strip(), fields.get("note", ""))
        elif upload is not None and not isinstance(upload, str) and upload.filename:
            content = await upload.read(MAX_BYTES + 1)
            view = studio.competitions.submit_file(who, name, content, upload.filename, fields.get("note", ""))
        else:
            raise InvalidInputError("choose a predictions file, or name a hub model (NAME:VERSION) or a run")
    except OarError as exc:
        if exc.http_status >= 500:
            raise
        flash(request, f"not submitted (no quota used): {exc}")
        return RedirectResponse(f"/competitions/{name}#submit", 303)
    outcome = {"scored": "scored", "failed": f"failed: {view.error}"}.get(view.status, "queued for scoring")
    flash(request, f"submission {view.id} {outcome}")
    return RedirectResponse(f"/competitions/{name}#mine", 303)


@router.post("/competitions/{name}/select")
async def select(name: str, request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    await checked_form(request)
    form = await request.form()
    chosen = [str(v) for v in form.getlist("final")]
    services(request).competitions.select(who, name, chosen)
    flash(request, f"{len(chosen)} final submission(s) selected")
    return RedirectResponse(f"/competitions/{name}#mine", 303)


@router.post("/competitions/{name}/close")
async def close(name: str, request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    await checked_form(request)
    services(request).competitions.close(who, name)
    flash(request, f"competition {name} ended: the private leaderboard is revealed")
    return RedirectResponse(f"/competitions/{name}", 303)


@router.post("/competitions/{name}/organizers")
async def organizers(name: str, request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    form = await checked_form(request)
    users = [u for u in form.get("users", "").replace(",", " ").split() if u]
    competition = services(request).competitions.set_organizers(who, name, users)
    flash(request, f"organizers of {name}: {', '.join([competition.owner, *competition.spec['organizers']])}")
    return RedirectResponse(f"/competitions/{name}#organize", 303)


@router.post("/competitions/{name}/edit")
async def edit(name: str, request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    form = await checked_form(request)
    changes: dict[str, object] = {"title": form.get("title", ""), "description": form.get("description", "")}
    try:
        changes["limits"] = {k: int(form[k]) for k in ("daily", "total", "final_selections")}
    except (KeyError, ValueError):
        raise InvalidInputError("limits: daily, total and final selections are whole numbers") from None
    services(request).competitions.edit(who, name, changes)
    flash(request, f"competition {name} saved")
    return RedirectResponse(f"/competitions/{name}#organize", 303)


@router.post("/competitions/{name}/rescore")
async def rescore(name: str, request: Request):  # type: ignore[no-untyped-def]
    who = require_user(request)
    await checked_form(request)
    queued = services(request).competitions.rescore(who, name)
    flash(request, f"{len(queued)} submission(s) queued to be scored again")
    return RedirectResponse(f"/competitions/{name}#organize", 303)
