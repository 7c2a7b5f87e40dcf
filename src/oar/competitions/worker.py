"""The scoring job's process: ``python -m oar.competitions.worker SUBMISSION_ID`` (job kind ``score``).

It scores one submission against the hidden labels and records the public and private scores. A
problem with the submission itself (a file that no longer parses, a metric that raises on it) is the
submission's error and the job still succeeds: the scorer worked. Anything else exits non-zero, so
the jobs queue retries it; a killed worker is requeued by the scheduler. A wall-time alarm bounds
every scoring, so no submission stays running.

Messages never quote the hidden labels: an organizer metric that raises is reported by its type only.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np

from oar._core.errors import InvalidInputError
from oar.competitions import hidden, predictions
from oar.competitions.metrics import Metric, bundle_metric, get_metric
from oar.competitions.store import FAILED, QUEUED, RUNNING, SCORED, Competition, CompetitionStore, Submission, now


class ScoringTimeout(Exception):
    pass


def metric_of(home: Path, competition: Competition) -> Metric:
    spec = competition.spec["metric"]
    if isinstance(spec, str):
        return get_metric(spec)
    path = hidden.competition_dir(home, competition.name) / hidden.HIDDEN / "metric.py"
    return bundle_metric(path, spec["function"], spec["higher"], spec["predicts"])


def submitted_file(home: Path, competition: Competition, submission: Submission) -> Path:
    folder = hidden.competition_dir(home, competition.name) / "submissions" / submission.id
    return next(p for p in folder.iterdir() if p.name.startswith("predictions."))


def score_predictions(home: Path, competition: Competition, predicted: dict[str, Any]) -> dict[str, float]:
    """Public and private scores of predictions by id."""
    truth = hidden.load_hidden(home, competition.name)
    metric = metric_of(home, competition)
    y_pred = np.asarray([predicted[i] for i in truth.ids])
    try:
        public = metric.fn(truth.labels[truth.public], y_pred[truth.public])
        private = metric.fn(truth.labels[~truth.public], y_pred[~truth.public])
    except Exception as exc:  # the organizer's function: its message may quote labels, its type does not
        raise InvalidInputError(f"the competition's metric failed on this submission ({type(exc).__name__})") from None
    return {"public": float(public), "private": float(private)}


def score_file(home: Path, competition: Competition, submission: Submission) -> dict[str, Any]:
    path = submitted_file(home, competition, submission)
    ids = hidden.input_ids(home, competition.name)
    predicted = predictions.parse(
        path.read_bytes(), path.name, ids, competition.spec["label_names"], _predicts(competition)
    )
    return {"scores": score_predictions(home, competition, predicted), "details": {}}


def _predicts(competition: Competition) -> str:
    from oar.competitions.service import _predicts as predicts

    return predicts(competition)


def run(submission_id: str) -> int:
    from oar.hub import Hub

    hub = Hub()
    store = CompetitionStore.open(hub)
    submission = store.submission(submission_id)
    if submission.status not in (QUEUED, RUNNING):
        print(f"submission {submission.id} is already {submission.status}")
        return 0
    competition = store.by_id(submission.competition_id)
    store.update(submission.id, only_if={QUEUED}, status=RUNNING)
    limit = float(competition.spec["sandbox"]["time_s"])
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        if submission.kind == "file":
            result = score_file(hub.home, competition, submission)
        elif submission.kind == "reproduction":
            from oar.competitions.packages import score_reproduction

            result = score_reproduction(hub, competition, submission)
        else:
            from oar.competitions.packages import score_package

            result = score_package(hub, competition, submission)
    except (InvalidInputError, ScoringTimeout) as exc:
        message = str(exc) if isinstance(exc, InvalidInputError) else f"scoring took over {limit:g} s (the limit)"
        store.update(submission.id, only_if={RUNNING}, status=FAILED, error=message, scored_at=now())
        print(f"submission {submission.id} failed: {message.splitlines()[0]}")
        return 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    scores = result["scores"]
    store.update(
        submission.id,
        only_if={RUNNING},
        status=SCORED,
        public_score=scores["public"],
        private_score=scores["private"],
        details=result["details"],
        scored_at=now(),
    )
    print(f"submission {submission.id} scored")  # never the scores: the log is readable by the job's viewers
    return 0


def _alarm(signum: int, frame: Any) -> None:
    raise ScoringTimeout


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m oar.competitions.worker SUBMISSION_ID", file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
