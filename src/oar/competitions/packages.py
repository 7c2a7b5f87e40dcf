"""Model-package submissions: checked at submission, run in the sandbox by the scoring job.

The score holds the metric on the hidden test inputs and how fast the package serves them with oar's
runtime: latency p50/p99 at batch 1, throughput at batch 32. The ranking score subtracts
``weights.latency`` per millisecond of p50 latency from ``weights.metric`` x the metric.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from oar._core.errors import InvalidInputError, NotFoundError
from oar.competitions import hidden, sandbox
from oar.competitions.store import Competition, Submission
from oar.hub import Hub

TASKS = {"text": "text-classification", "x": "image-classification"}


def parse_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.partition(":")
    if not name or (version and not version.isdigit()):
        raise InvalidInputError(f"expected a model as NAME or NAME:VERSION, got '{ref[:80]}'")
    return name, int(version) if version else None


def check_package(hub: Hub, competition: Competition, ref: str) -> str:
    """``NAME:VERSION`` of a hub package fit for the competition's task, or a one-line reason it is not."""
    name, version = parse_ref(ref)
    try:
        package = hub.open_package(name, version)
    except NotFoundError:
        raise InvalidInputError(f"no model '{ref}' in the hub") from None
    manifest = package.manifest
    task = competition.spec.get("task", "text-classification")
    if manifest.task != task:
        raise InvalidInputError(f"model {package.model_id} is a {manifest.task} package; this competition is {task}")
    labels = competition.spec["label_names"]
    if len(manifest.labels) != len(labels):
        raise InvalidInputError(
            f"model {package.model_id} predicts {len(manifest.labels)} labels; this competition has {len(labels)}"
        )
    return package.model_id


def package_limits(competition: Competition) -> sandbox.Limits:
    box = competition.spec["sandbox"]
    return sandbox.Limits(wall_s=float(box["time_s"]), memory_mb=int(box["memory_mb"]), cpus=int(box["cpus"]))


def run_package(hub: Hub, competition: Competition, ref: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(predictions by id, timing) of the package on the competition's inputs, in a fresh sandbox."""
    name, version = parse_ref(ref)
    package = hub.open_package(name, version)
    box = sandbox.Box()
    try:
        package_dir = box.add_input(package.path, "package")
        inputs = box.add_input(hidden.competition_dir(hub.home, competition.name) / hidden.INPUTS, "inputs.jsonl")
        oar_root = str(Path(__file__).resolve().parents[2])
        command = [sys.executable, "-m", "oar.competitions.package_runner", str(package_dir), str(inputs)]
        outcome = sandbox.run(box, command, package_limits(competition), env={"PYTHONPATH": oar_root})
        if outcome.timed_out:
            raise InvalidInputError(f"the package ran past the time limit ({package_limits(competition).wall_s:g} s)")
        if outcome.exit_code != 0:
            last = [line for line in outcome.stderr_tail.splitlines() if line.strip()][-1:] or ["no message"]
            raise InvalidInputError(f"the package failed in the sandbox (exit {outcome.exit_code}): {last[0][:300]}")
        try:
            produced = json.loads(box.read_output("predictions.json"))
            timing = json.loads(box.read_output("timing.json"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"the package left no readable predictions ({type(exc).__name__})") from None
    finally:
        box.close()
    key = "score" if competition.spec.get("predicts") == "score" else "label"
    return dict(zip(produced["ids"], produced[key], strict=True)), timing


def score_package(hub: Hub, competition: Competition, submission: Submission) -> dict[str, Any]:
    from oar.competitions.worker import score_predictions

    predicted, timing = run_package(hub, competition, submission.source)
    ids = hidden.input_ids(hub.home, competition.name)
    if sorted(predicted) != sorted(ids):
        raise InvalidInputError("the package's predictions do not cover the test inputs")
    scores = score_predictions(hub.home, competition, predicted)
    return {"scores": scores, "details": {k: round(float(v), 4) for k, v in timing.items()}}


def score_reproduction(hub: Hub, competition: Competition, submission: Submission) -> dict[str, Any]:
    """The re-trained model's scores (they rank it), with the claimed package's public score beside them.

    The gap is compared on the public rows only: a claimed private score in the details would reach the
    public board before the end.
    """
    reproduced = score_package(hub, competition, _with_source(submission, submission.details["reproduced_model"]))
    claimed = score_package(hub, competition, submission)
    gap = claimed["scores"]["public"] - reproduced["scores"]["public"]
    details = {
        **reproduced["details"],
        "claimed_model": submission.source,
        "reproduced_model": submission.details["reproduced_model"],
        "claimed_public": round(claimed["scores"]["public"], 6),
        "gap": round(gap, 6),
        "flagged": abs(gap) > float(competition.spec["tolerance"]),
        "run": submission.details.get("run"),
    }
    return {"scores": reproduced["scores"], "details": details}


def _with_source(submission: Submission, source: str) -> Submission:
    from dataclasses import replace

    return replace(submission, source=source)
