"""What the studio and ``oar competitions`` do with competitions: create, submit, rank. No access control
here (the studio's service adds roles); every rule of the game is (phases, quotas, the private board's
reveal at the end).

A submission is validated in full here, before it is recorded, so a bad file costs nothing; it is then
scored by a job of kind ``score`` in the jobs queue (``oar.jobs``), never in the caller's process. A
submission's state follows its job: a job that fails or is cancelled leaves the submission failed or
cancelled with a one-line reason, and neither counts against the quotas.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from oar._core.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError, OarError
from oar.competitions import hidden, predictions, sandbox
from oar.competitions.config import CompetitionSpec, parse_spec
from oar.competitions.metrics import METRICS
from oar.competitions.store import (
    CANCELLED,
    FAILED,
    NOT_COUNTED,
    QUEUED,
    RUNNING,
    SCORED,
    Competition,
    CompetitionStore,
    Submission,
    now,
)
from oar.hub import Hub

SUBMISSIONS = "submissions"
EDITABLE = {"title", "description", "limits", "weights"}
SCORING_RETRIES = 1  # one more attempt after a crashed scorer (a lost or killed worker is requeued anyway)


@dataclass(frozen=True)
class Entry:
    """One row of a leaderboard: a participant's best counted submission on that board."""

    rank: int
    user: str
    submission_id: str
    score: float
    submitted_at: datetime
    entries: int
    public_score: float | None = None
    details: dict[str, Any] | None = None


class Competitions:
    def __init__(self, hub: Hub, score_files_at_once: bool = True) -> None:
        self.hub = hub
        self.store = CompetitionStore.open(hub)
        self.score_files_at_once = score_files_at_once  # files under a built-in metric: no scoring job

    # --- organizers ------------------------------------------------------------------------------

    def create(self, spec: CompetitionSpec, owner: str, bundle: Path | None = None) -> Competition:
        """Check everything, write the hidden split, record the competition."""
        from oar.jobs.pools import load_pools

        load_pools().get(spec.pool)  # an unknown pool is refused now, not when the first submission waits
        metric_file = None
        if not isinstance(spec.metric, str):
            if bundle is None:
                raise InvalidInputError("a metric function needs the competition bundle (`oar competitions create`)")
            metric_file = (bundle / spec.metric.file).resolve()
            if not metric_file.is_relative_to(bundle.resolve()) or not metric_file.is_file():
                raise InvalidInputError(f"metric file '{spec.metric.file}' is not a file of the bundle")
        if _taken(self.store, spec.name):
            raise ConflictError(f"a competition named '{spec.name}' exists")
        record = hidden.dataset_version(self.hub, spec)
        root = hidden.competition_dir(self.hub.home, spec.name)
        size, public = hidden.materialize(self.hub.home, spec, record)
        if metric_file is not None:
            shutil.copyfile(metric_file, root / hidden.HIDDEN / "metric.py")
        stored = spec.model_dump(mode="json")
        stored["label_names"] = hidden.load_hidden(self.hub.home, spec.name).label_names
        stored["task"] = record.card.get("task", "text-classification")
        stored["predicts"] = _predicts_of(stored["metric"])
        return self.store.add(
            name=spec.name,
            title=spec.title or spec.name,
            owner=owner,
            spec=stored,
            dataset_name=record.name,
            dataset_version=record.version,
            test_size=size,
            public_size=public,
            starts_at=spec.phases[0].start,
            ends_at=spec.end,
        )

    def organizers(self, competition: Competition) -> list[str]:
        return organizers_of(competition)

    def set_organizers(self, competition: Competition, users: list[str]) -> Competition:
        """The added organizers (the creator always is one). Someone who has submitted cannot organize:
        organizers see private scores before the end."""
        chosen = sorted({u for u in users if u != competition.owner})
        playing = {s.user for s in self.store.submissions(competition.id)} & set(chosen)
        if playing:
            names = ", ".join(sorted(playing))
            raise ConflictError(f"{names} took part in '{competition.name}' and cannot organize it")
        return self.store.update_spec(competition.id, {"organizers": chosen})

    def edit(self, competition: Competition, changes: dict[str, Any]) -> Competition:
        """Change what can change without a new hidden split: title, description, limits and weights,
        each checked as the competition file is."""
        unknown = sorted(set(changes) - EDITABLE)
        if unknown:
            fixed, editable = ", ".join(unknown), ", ".join(sorted(EDITABLE))
            raise InvalidInputError(f"{fixed}: cannot be changed after creation; editable: {editable}")
        fields = set(CompetitionSpec.model_fields)
        raw = {k: v for k, v in competition.spec.items() if k in fields}
        checked = parse_spec({**raw, **changes}, f"the changes to '{competition.name}'").model_dump(mode="json")
        title = checked["title"] or competition.name if "title" in changes else None
        return self.store.update_spec(competition.id, {k: checked[k] for k in changes}, title=title)

    def rescore(self, competition: Competition) -> list[Submission]:
        """Score every scored submission again, each by a new scoring job (after the hidden set or the metric
        was fixed); the new scores replace the old ones when they land."""
        queued = []
        for submission in self.store.submissions(competition.id):
            if submission.status != SCORED:
                continue
            job = self._score_job(competition, submission)
            if self.store.update(submission.id, only_if={SCORED}, status=QUEUED, error="", job_id=job.id):
                queued.append(self.store.submission(submission.id))
        if queued:
            ensure_scheduler(self.hub)
        return queued

    def close(self, competition: Competition, at: datetime | None = None) -> Competition:
        """End it now (or at ``at``): submissions stop, the private board is revealed."""
        return self.store.close(competition.id, at or now())

    # --- participants ----------------------------------------------------------------------------

    def inputs_path(self, competition: Competition) -> Path:
        return hidden.competition_dir(self.hub.home, competition.name) / hidden.INPUTS

    def quota(self, competition: Competition, user: str, at: datetime | None = None) -> dict[str, int]:
        """Submissions left today and in all; failed and cancelled ones are not counted."""
        at = at or now()
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        counted = [s for s in self.submissions(competition, user) if s.status not in NOT_COUNTED]
        today = sum(1 for s in counted if s.submitted_at >= day)
        limits = competition.spec["limits"]
        return {
            "daily_left": max(0, limits["daily"] - today),
            "total_left": max(0, limits["total"] - len(counted)),
            "resets_at_hour_utc": 0,
        }

    def submit_file(
        self, competition: Competition, user: str, content: bytes, filename: str, note: str = ""
    ) -> Submission:
        """Validate the predictions file, record it, queue its scoring job."""
        self._may_submit(competition, user)
        predicts = _predicts(competition)
        ids = hidden.input_ids(self.hub.home, competition.name)
        predicted = predictions.parse(content, filename, ids, competition.spec["label_names"], predicts)
        submission = self.store.add_submission(
            competition_id=competition.id, user=user, kind="file", source=Path(filename).name[:300], note=note[:500]
        )
        folder = self._folder(competition, submission.id)
        (folder / ("predictions.jsonl" if filename.lower().endswith(".jsonl") else "predictions.csv")).write_bytes(
            content
        )
        if self.score_files_at_once and isinstance(competition.spec["metric"], str):
            return self._score_now(competition, submission, predicted)
        return self._enqueue(competition, submission)

    def _score_now(self, competition: Competition, submission: Submission, predicted: dict[str, Any]) -> Submission:
        """Score a predictions file here, as it arrives: it is parsed and checked already, a built-in metric
        is oar's own code (an organizer's metric file never runs in this process: those files go to a
        scoring job), and it takes milliseconds where a job's start takes seconds. The labels are read
        by this process as the job's would be, and the scores are recorded, never returned."""
        from oar.competitions.worker import score_predictions

        try:
            scores = score_predictions(self.hub.home, competition, predicted)
        except InvalidInputError as exc:
            self.store.update(submission.id, status=FAILED, error=str(exc), scored_at=now())
        else:
            self.store.update(
                submission.id,
                status=SCORED,
                public_score=scores["public"],
                private_score=scores["private"],
                details={"scored": "at submission"},
                scored_at=now(),
            )
        return self.store.submission(submission.id)

    def submit_package(self, competition: Competition, user: str, ref: str, note: str = "") -> Submission:
        """Check a hub package fits the task, record it, queue its scoring job (it runs in the sandbox)."""
        from oar.competitions.packages import check_package

        reason = sandbox.available()
        if reason:
            raise ConflictError(f"this server cannot score model packages: {reason}")
        self._may_submit(competition, user)
        model_id = check_package(self.hub, competition, ref)
        submission = self.store.add_submission(
            competition_id=competition.id, user=user, kind="package", source=model_id, note=note[:500]
        )
        return self._enqueue(competition, submission)

    def submit_reproduction(self, competition: Competition, user: str, run_id: str, note: str = "") -> Submission:
        """A run and the package it registered: the run's config is re-trained as a job (same seed), then
        the re-trained model and the claimed one are scored; the board shows both and flags a gap."""
        from oar.competitions.packages import check_package
        from oar.jobs import service as jobs
        from oar.jobs.pools import load_pools

        reason = sandbox.available()
        if reason:
            raise ConflictError(f"this server cannot score model packages: {reason}")
        self._may_submit(competition, user)
        config, claimed = self._reproducible(run_id)
        model_id = check_package(self.hub, competition, claimed)
        submission = self.store.add_submission(
            competition_id=competition.id, user=user, kind="reproduction", source=model_id, note=note[:500]
        )
        config["name"] = f"repro-{submission.id}"
        config["register_model"] = True
        path = self._folder(competition, submission.id) / "train.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        overrides = {"pool": competition.spec["pool"], "user": user, "retries": SCORING_RETRIES}
        try:
            job = jobs.submit(path, self.hub, load_pools(), overrides)
        except OarError as exc:
            self.store.update(submission.id, status=FAILED, error=f"the re-training was refused: {exc}")
            return self.store.submission(submission.id)
        details = {"run": run_id, "stage": "training", "train_job": job.id, "train_run": job.run_id}
        self.store.update(submission.id, job_id=job.id, details=details)
        ensure_scheduler(self.hub)
        return self.store.submission(submission.id)

    def _reproducible(self, run_id: str) -> tuple[dict[str, Any], str]:
        """The run's training config (checked as `oar train` checks it) and the package it registered."""
        from oar.train.job import parse_job

        try:
            run = self.hub.runs.get(run_id)
        except NotFoundError:
            raise InvalidInputError(f"no run '{run_id[:40]}'") from None
        claimed = run.metrics.get("model")
        if not claimed:
            raise InvalidInputError(f"run {run.id} registered no model: a reproduction needs the package it made")
        config = dict(run.config.get("job") or {})
        parse_job(config, f"run {run.id}'s config")
        trainer = dict(config.get("trainer") or {})
        checkpoint = dict(trainer.get("checkpoint") or {})
        if checkpoint.get("every_steps") is None and checkpoint.get("every_seconds") is None:
            checkpoint["every_steps"] = 50  # a queued job resumes from checkpoints
        checkpoint["dir"] = None
        trainer["checkpoint"] = checkpoint
        config["trainer"] = trainer
        return config, str(claimed)

    def submissions(self, competition: Competition, user: str | None = None) -> list[Submission]:
        return [self.refresh(s) for s in self.store.submissions(competition.id, user)]

    def refresh(self, submission: Submission) -> Submission:
        """A waiting submission takes its job's state: running, or failed / cancelled with the reason."""
        if submission.status not in (QUEUED, RUNNING) or submission.job_id is None:
            return submission
        from oar.jobs.store import JobStore

        job = JobStore.open(self.hub).get(submission.job_id)
        if submission.details.get("stage") == "training":
            return self._after_training(submission, job)
        if job.state == "running" and submission.status == QUEUED:
            self.store.update(submission.id, only_if={QUEUED}, status=RUNNING)
        elif job.state == "failed":
            self.store.update(
                submission.id,
                only_if={QUEUED, RUNNING},
                status=FAILED,
                error=f"the scorer stopped without a result after {job.failures} attempt(s); it costs no quota",
                scored_at=now(),
            )
        elif job.state == "cancelled":
            self.store.update(
                submission.id, only_if={QUEUED, RUNNING}, status=CANCELLED, error="cancelled", scored_at=now()
            )
        elif job.state == "succeeded":  # the worker records the result before it exits 0; if it did not:
            self.store.update(
                submission.id,
                only_if={QUEUED, RUNNING},
                status=FAILED,
                error="the scorer ended without recording a result; it costs no quota",
                scored_at=now(),
            )
        return self.store.submission(submission.id)

    def _after_training(self, submission: Submission, job: Any) -> Submission:
        """The re-training job ended: queue the scoring of both models, or fail the submission (no quota)."""
        if job.state == "running" and submission.status == QUEUED:
            self.store.update(submission.id, only_if={QUEUED}, status=RUNNING)
        elif job.state in ("failed", "cancelled"):
            why = job.reason.split("\n")[0][:300]
            error = f"the re-training {job.state}: {why}; it costs no quota"
            status = CANCELLED if job.state == "cancelled" else FAILED
            self.store.update(submission.id, only_if={QUEUED, RUNNING}, status=status, error=error, scored_at=now())
        elif job.state == "succeeded":
            model = self.hub.runs.get(job.run_id).metrics.get("model")
            if not model:
                error = "the re-trained run registered no model; it costs no quota"
                self.store.update(submission.id, only_if={QUEUED, RUNNING}, status=FAILED, error=error)
            else:
                competition = self.store.by_id(submission.competition_id)
                details = {**submission.details, "stage": "scoring", "reproduced_model": model}
                scoring = self._score_job(competition, submission)
                if self.store.update(submission.id, only_if_job=job.id, job_id=scoring.id, details=details):
                    ensure_scheduler(self.hub)
                else:  # another reader moved it first
                    from oar.jobs import service as jobs

                    jobs.cancel(scoring.id, self.hub)
        return self.store.submission(submission.id)

    def cancel(self, competition: Competition, user: str, submission_id: str) -> Submission:
        from oar.jobs import service as jobs

        submission = self._own(competition, user, submission_id)
        if submission.status in (QUEUED, RUNNING) and submission.job_id:
            jobs.cancel(submission.job_id, self.hub)
        return self.refresh(self.store.submission(submission.id))

    def select(self, competition: Competition, user: str, submission_ids: list[str]) -> list[Submission]:
        """The participant's final submissions for the private board (at most ``final_selections``)."""
        limit = competition.spec["limits"]["final_selections"]
        if len(set(submission_ids)) > limit:
            raise InvalidInputError(f"at most {limit} final submission(s) may be selected")
        if competition.ended(now()):
            raise ForbiddenError("the competition has ended: final selections are closed")
        chosen = set(submission_ids)
        for submission_id in chosen:
            if self._own(competition, user, submission_id).status != SCORED:
                raise InvalidInputError(f"submission {submission_id} has no score: only scored ones can be selected")
        for submission in self.store.submissions(competition.id, user):
            self.store.update(submission.id, selected=submission.id in chosen)
        return self.submissions(competition, user)

    # --- leaderboards ----------------------------------------------------------------------------

    def leaderboard(
        self, competition: Competition, board: str = "public", at: datetime | None = None, reveal: bool = False
    ) -> list[Entry]:
        """The public board (live), or the private one once the competition has ended (else refused; with
        ``reveal``, for its organizers, live)."""
        at = at or now()
        if board not in ("public", "private"):
            raise InvalidInputError("board is public or private")
        if board == "private" and not competition.ended(at) and not reveal:
            raise ForbiddenError(
                f"the private leaderboard is revealed at the end ({competition.ends_at:%Y-%m-%d %H:%M} UTC)"
            )
        higher = _higher(competition)
        weights = competition.spec["weights"]

        def ranked(submission: Submission, value: float | None) -> float:
            return ranking_score(value, submission.details, weights, higher)

        scored = [s for s in self.submissions(competition) if s.status == SCORED and s.public_score is not None]
        by_user: dict[str, list[Submission]] = {}
        for submission in scored:
            by_user.setdefault(submission.user, []).append(submission)
        best: list[tuple[Submission, float, int]] = []
        for user_submissions in by_user.values():
            if board == "private":
                pool = _finals(user_submissions, competition, higher)
                pick = _best(pool, lambda s: ranked(s, s.private_score), higher)
                best.append((pick, ranked(pick, pick.private_score), len(user_submissions)))
            else:
                pick = _best(user_submissions, lambda s: ranked(s, s.public_score), higher)
                best.append((pick, ranked(pick, pick.public_score), len(user_submissions)))
        best.sort(key=lambda item: (-item[1] if higher else item[1], item[0].submitted_at))
        return [
            Entry(rank, s.user, s.id, score, s.submitted_at, count, s.public_score, s.details)
            for rank, (s, score, count) in enumerate(best, 1)
        ]

    # --- helpers ---------------------------------------------------------------------------------

    def _may_submit(self, competition: Competition, user: str) -> None:
        at = now()
        if competition.open_phase(at) is None:
            when = "has ended" if competition.ended(at) else "is not open now"
            raise ForbiddenError(f"competition '{competition.name}' {when}: no phase takes submissions")
        left = self.quota(competition, user, at)
        if left["total_left"] <= 0:
            raise ForbiddenError(f"no submissions left: the limit is {competition.spec['limits']['total']} in all")
        if left["daily_left"] <= 0:
            daily = competition.spec["limits"]["daily"]
            raise ForbiddenError(f"no submissions left today: the limit is {daily} a day (resets at 00:00 UTC)")

    def _own(self, competition: Competition, user: str, submission_id: str) -> Submission:
        submission = self.store.submission(submission_id)
        if submission.competition_id != competition.id or submission.user != user:
            raise ForbiddenError(f"submission {submission_id} is not yours")
        return submission

    def _folder(self, competition: Competition, submission_id: str) -> Path:
        folder = hidden.competition_dir(self.hub.home, competition.name) / SUBMISSIONS / submission_id
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def _enqueue(self, competition: Competition, submission: Submission) -> Submission:
        job = self._score_job(competition, submission)
        self.store.update(submission.id, job_id=job.id)
        ensure_scheduler(self.hub)
        return self.store.submission(submission.id)

    def _score_job(self, competition: Competition, submission: Submission) -> Any:
        from oar.jobs.store import JobStore

        return JobStore.open(self.hub).submit(
            name=f"score-{competition.name}"[:100],
            user=submission.user,
            priority=0,
            pool=competition.spec["pool"],
            workers_min=1,
            workers_max=1,
            cpus=int(competition.spec["sandbox"]["cpus"]),
            retries=SCORING_RETRIES,
            run_id=submission.id,
            spec={"kind": "score", "competition": competition.name, "submission": submission.id},
            deadline=None,
            cluster="local",
        )


def organizers_of(competition: Competition) -> list[str]:
    """Who runs it: its creator, then the users the creator (or an admin) added."""
    added = [u for u in competition.spec.get("organizers", []) if u != competition.owner]
    return [competition.owner, *added]


def ensure_scheduler(hub: Hub) -> None:
    from oar.jobs.daemon import ensure_running

    ensure_running(hub)


def ranking_score(value: float | None, details: dict[str, Any], weights: dict[str, float], higher: bool) -> float:
    """weights.metric x the metric, less weights.latency per millisecond of p50 latency (when measured;
    for a lower-is-better metric the latency term is added)."""
    latency = float(details.get("latency_p50_ms") or 0.0) * float(weights.get("latency", 0.0))
    metric = float(value or 0.0) * float(weights.get("metric", 1.0))
    return metric - latency if higher else metric + latency


def _taken(store: CompetitionStore, name: str) -> bool:
    return any(c.name == name for c in store.list())


def _predicts(competition: Competition) -> str:
    return _predicts_of(competition.spec["metric"])


def _predicts_of(metric: Any) -> str:
    return METRICS[metric].predicts if isinstance(metric, str) else metric["predicts"]


def _higher(competition: Competition) -> bool:
    metric = competition.spec["metric"]
    return METRICS[metric].higher if isinstance(metric, str) else bool(metric["higher"])


def _best(submissions: list[Submission], key: Any, higher: bool) -> Submission:
    """The best by ``key``; ties go to the earlier submission."""
    ordered = sorted(submissions, key=lambda s: s.submitted_at)
    return (max if higher else min)(ordered, key=lambda s: float(key(s) or 0.0))


def _finals(submissions: list[Submission], competition: Competition, higher: bool) -> list[Submission]:
    """The participant's selections, else (as most platforms do) their best public ones up to the limit."""
    chosen = [s for s in submissions if s.selected]
    if chosen:
        return chosen
    limit = competition.spec["limits"]["final_selections"]
    ordered = sorted(submissions, key=lambda s: ((-1 if higher else 1) * float(s.public_score or 0.0), s.submitted_at))
    return ordered[:limit]
