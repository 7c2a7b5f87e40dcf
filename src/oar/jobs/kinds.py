"""Kinds of job: what an attempt runs. A job's ``spec["kind"]`` picks the module, ``train`` by default.

The table names modules instead of importing them, so the queue stays below everything it runs: a
scoring job of a competition is placed, retried and requeued exactly like a training job, and only
its worker process imports ``oar.competitions``. A kind outside the table is refused at submission.
"""

from __future__ import annotations

from typing import Any

from oar._core.errors import InvalidInputError

WORKER_MODULES = {
    "train": "oar.jobs.worker",  # python -m oar.jobs.worker RUN_ID
    "score": "oar.competitions.worker",  # python -m oar.competitions.worker SUBMISSION_ID
    "fewshot": "oar.fewshot.job",  # python -m oar.fewshot.job RUN_ID (a job file with a fewshot: section)
}


def is_fewshot_job(training: dict[str, Any]) -> bool:
    """A job file whose training section is ``fewshot:`` (instead of ``data``/``model``/``trainer``)."""
    return "fewshot" in training


def worker_module(spec: dict[str, Any]) -> str:
    kind = spec.get("kind", "train")
    try:
        return WORKER_MODULES[kind]
    except KeyError:
        raise InvalidInputError(f"unknown job kind '{kind}'; kinds: {', '.join(WORKER_MODULES)}") from None
