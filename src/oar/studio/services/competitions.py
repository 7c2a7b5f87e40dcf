"""Competitions for the API and the pages: who may organize, submit and see what.

Admins and users with the organizer role create competitions. Each competition has organizers: its
creator, and the users the creator (or an admin) adds, admins or not. Organizers (and admins) edit it,
re-score it and end it; organizers, and only they, see private scores before the end (the private
board, every submission's scores), so they cannot take part. Members, organizers and admins take part;
viewers look. A participant sees their own submissions and the public board; :func:`visible` drops the
private score from every submission until the end, and the private board is refused to everyone but the
organizers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from oar._core.errors import ForbiddenError, InvalidInputError, NotFoundError
from oar.competitions.config import parse_spec
from oar.competitions.service import Competitions, Entry
from oar.competitions.store import Competition, Submission, now
from oar.hub import Hub
from oar.studio.services.access import Principal, require_creator, require_signed_in
from oar.studio.services.accounts import AccountService


@dataclass(frozen=True)
class SubmissionView:
    """A submission as its owner may see it: the private score only after the end."""

    id: str
    user: str
    kind: str
    source: str
    note: str
    status: str
    error: str
    public_score: float | None
    private_score: float | None
    details: dict[str, Any]
    selected: bool
    submitted_at: datetime
    scored_at: datetime | None


def visible(submission: Submission, competition: Competition, at: datetime, organizer: bool = False) -> SubmissionView:
    revealed = organizer or competition.ended(at)
    return SubmissionView(
        id=submission.id,
        user=submission.user,
        kind=submission.kind,
        source=submission.source,
        note=submission.note,
        status=submission.status,
        error=submission.error,
        public_score=submission.public_score,
        private_score=submission.private_score if revealed else None,
        details=submission.details,
        selected=submission.selected,
        submitted_at=submission.submitted_at,
        scored_at=submission.scored_at,
    )


class CompetitionService:
    def __init__(self, hub: Hub, accounts: AccountService | None = None) -> None:
        self.hub = hub
        self.core = Competitions(hub)
        self.accounts = accounts

    # --- organizers ------------------------------------------------------------------------------
    def is_organizer(self, who: Principal | None, competition: Competition) -> bool:
        return who is not None and who.username in self.core.organizers(competition)

    def organizers(self, name: str) -> list[str]:
        return self.core.organizers(self.core.store.get(name))

    def set_organizers(self, who: Principal | None, name: str, users: list[str]) -> Competition:
        """Only the creator (or an admin) chooses the organizers; each must be an active studio user."""
        actor = require_signed_in(who)
        competition = self.core.store.get(name)
        if actor.username != competition.owner and not actor.is_admin:
            raise ForbiddenError(f"only {competition.owner}, who created '{name}', or an admin chooses its organizers")
        for username in users:
            try:
                user = self.accounts.by_name(username) if self.accounts else None
            except NotFoundError:
                user = None
            if self.accounts and (user is None or user.disabled):
                raise InvalidInputError(f"no active user '{username[:40]}'")
        return self.core.set_organizers(competition, users)

    def edit(self, who: Principal | None, name: str, changes: dict[str, Any]) -> Competition:
        competition = self._managed(who, name, "edit")
        return self.core.edit(competition, changes)

    def rescore(self, who: Principal | None, name: str) -> list[SubmissionView]:
        competition = self._managed(who, name, "re-score")
        at, organizer = now(), self.is_organizer(who, competition)
        return [visible(s, competition, at, organizer) for s in self.core.rescore(competition)]

    def all_submissions(self, who: Principal | None, name: str) -> list[SubmissionView]:
        """Every participant's submissions with both scores: organizers only."""
        competition = self.core.store.get(name)
        if not self.is_organizer(require_signed_in(who), competition):
            raise ForbiddenError(f"only the organizers of '{name}' see every submission and its private score")
        at = now()
        return [visible(s, competition, at, organizer=True) for s in reversed(self.core.submissions(competition))]

    def _playable(self, actor: Principal, name: str) -> Competition:
        competition = self.core.store.get(name)
        if self.is_organizer(actor, competition):
            raise ForbiddenError(f"you organize '{name}': organizers see private scores and cannot take part")
        return competition

    def _managed(self, who: Principal | None, name: str, action: str) -> Competition:
        actor = require_signed_in(who)
        competition = self.core.store.get(name)
        if not (actor.is_admin or self.is_organizer(actor, competition)):
            raise ForbiddenError(f"only the organizers of '{name}' (or an admin) can {action} it")
        return competition

    def list(self, who: Principal | None) -> list[Competition]:
        require_signed_in(who)
        return self.core.store.list()

    def get(self, who: Principal | None, name: str) -> Competition:
        require_signed_in(who)
        return self.core.store.get(name)

    def create(self, who: Principal | None, raw: Any, source: str = "the competition") -> Competition:
        actor = require_signed_in(who)
        if not actor.can_organize:
            raise ForbiddenError("only an admin or a user with the organizer role can create a competition")
        spec = parse_spec(raw, source)
        if not isinstance(spec.metric, str):
            raise InvalidInputError("a metric function comes in a bundle: `oar competitions create FILE` on the server")
        return self.core.create(spec, actor.username)

    def close(self, who: Principal | None, name: str) -> Competition:
        return self.core.close(self._managed(who, name, "end"))

    def inputs(self, who: Principal | None, name: str) -> Path:
        """The hidden test set's inputs (ids and features, never labels)."""
        return self.core.inputs_path(self.get(who, name))

    def submit_file(
        self, who: Principal | None, name: str, content: bytes, filename: str, note: str = ""
    ) -> SubmissionView:
        actor = require_creator(who, "submit to a competition")
        competition = self._playable(actor, name)
        return visible(self.core.submit_file(competition, actor.username, content, filename, note), competition, now())

    def submit_package(self, who: Principal | None, name: str, ref: str, note: str = "") -> SubmissionView:
        actor = require_creator(who, "submit to a competition")
        competition = self._playable(actor, name)
        model_name = ref.partition(":")[0]
        try:
            owner = self.hub.model_catalog.get(model_name).owner
        except NotFoundError:
            raise InvalidInputError(f"no model '{ref[:80]}' in the hub") from None
        if owner != actor.username and not actor.is_admin:
            raise ForbiddenError(f"model '{model_name}' belongs to {owner or 'nobody'}: submit a model of your own")
        return visible(self.core.submit_package(competition, actor.username, ref, note), competition, now())

    def submit_reproduction(self, who: Principal | None, name: str, run_id: str, note: str = "") -> SubmissionView:
        """Only the run's owner (or an admin) may submit it for reproduction."""
        actor = require_creator(who, "submit to a competition")
        competition = self._playable(actor, name)
        try:
            owner = self.hub.runs.get(run_id).owner
        except NotFoundError:
            raise InvalidInputError(f"no run '{run_id[:40]}'") from None
        if owner != actor.username and not actor.is_admin:
            raise ForbiddenError(f"run {run_id} belongs to {owner or 'nobody'}: submit a run of your own")
        return visible(self.core.submit_reproduction(competition, actor.username, run_id, note), competition, now())

    def mine(self, who: Principal | None, name: str) -> list[SubmissionView]:
        actor = require_signed_in(who)
        competition = self.core.store.get(name)
        at = now()
        return [visible(s, competition, at) for s in reversed(self.core.submissions(competition, actor.username))]

    def quota(self, who: Principal | None, name: str) -> dict[str, int]:
        actor = require_signed_in(who)
        return self.core.quota(self.core.store.get(name), actor.username)

    def cancel(self, who: Principal | None, name: str, submission_id: str) -> SubmissionView:
        actor = require_creator(who, "cancel a submission")
        competition = self.core.store.get(name)
        return visible(self.core.cancel(competition, actor.username, submission_id), competition, now())

    def select(self, who: Principal | None, name: str, submission_ids: list[str]) -> list[SubmissionView]:
        actor = require_creator(who, "select final submissions")
        competition = self.core.store.get(name)
        at = now()
        return [visible(s, competition, at) for s in self.core.select(competition, actor.username, submission_ids)]

    def leaderboard(self, who: Principal | None, name: str, board: str = "public") -> list[Entry]:
        """The public board; the private one once the competition has ended (403 before), except to its
        organizers, who follow it live."""
        require_signed_in(who)
        competition = self.core.store.get(name)
        return self.core.leaderboard(competition, board, reveal=self.is_organizer(who, competition))


def leaderboard_csv(entries: list[Entry], board: str) -> str:
    """The board as CSV: rank, user, score, entries, submitted at (the board's own score only)."""
    lines = [f"rank,user,{board}_score,entries,submitted_at"]
    lines += [f"{e.rank},{e.user},{e.score:.6f},{e.entries},{e.submitted_at.isoformat()}" for e in entries]
    return "\n".join(lines) + "\n"
