"""A job file is an ``oar train`` YAML file plus an optional ``resources:`` section.

::

    name: digits-cnn
    data: {dataset: digits, batch_size: 32}
    model: {arch: small-cnn}
    trainer: {epochs: 2, checkpoint: {every_steps: 10}}
    resources:
      pool: spot            # a pool of the pools file
      workers: [1, 2]       # or 2: data-parallel processes; a range grows and shrinks at checkpoints
      cpus: 1               # per worker
      priority: 0           # higher first
      user: ana
      retries: 0            # re-runs after a crash (exit code other than 0 and 75)
      max_preemptions: 3    # then the job moves to the on-demand pool
      deadline: 2026-12-03T18:00:00Z

The training sections are validated by ``oar.train.job`` exactly as ``oar train`` does; command-line
options of ``oar jobs submit`` override ``resources``.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from oar._core.config_files import invalid, read_yaml
from oar._core.errors import InvalidInputError


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pool: str = "on-demand"
    workers: tuple[int, int] = Field((1, 1), description="min and max data-parallel workers")
    cpus: int = Field(1, ge=1, description="CPUs per worker")
    priority: int = 0
    user: str = Field(default_factory=lambda: _user(), min_length=1, max_length=100)
    retries: int = Field(0, ge=0, le=100)
    max_preemptions: int | None = Field(None, ge=0, description="preemptions before moving to on-demand")
    deadline: datetime | None = None

    @field_validator("workers", mode="before")
    @classmethod
    def _range(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _ordered(self) -> Resources:
        low, high = self.workers
        if low < 1 or high < low:
            raise ValueError(f"workers must be N or [MIN, MAX] with 1 <= MIN <= MAX, got {list(self.workers)}")
        if self.deadline is not None and self.deadline.tzinfo is None:
            self.deadline = self.deadline.replace(tzinfo=UTC)
        return self


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container
        return "anonymous"


def read_job_file(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training sections, resources section) of a job file; YAML errors become ``InvalidInputError``."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{path}: expected a mapping of sections (data, model, trainer, resources)")
    resources = raw.pop("resources", None) or {}
    if not isinstance(resources, dict):
        raise InvalidInputError(f"{path}: resources must be a mapping, got {resources!r}")
    return raw, resources


def parse_resources(
    raw: dict[str, Any], overrides: dict[str, Any], source: str, now: datetime | None = None
) -> Resources:
    """The resources of a job file with the command line's ``overrides``; a deadline already past is refused."""
    merged = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        resources = Resources.model_validate(merged)
    except ValidationError as exc:
        raise invalid(source, exc, ("resources",)) from None
    moment = now or datetime.now(UTC)
    if resources.deadline is not None and resources.deadline <= moment:
        raise InvalidInputError(
            f"{source}: resources.deadline {resources.deadline.isoformat()} is already past "
            f"(now {moment.isoformat(timespec='seconds')}); give a future time or none"
        )
    return resources
