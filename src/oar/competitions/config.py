"""A competition file (YAML), checked in full before anything is recorded, each problem on one line.

::

    name: chnsenti-sentiment           # the slug in URLs and commands
    title: Chinese review sentiment
    dataset: {name: chnsenti, version: 1}
    test_rows: 400                     # optional: the first N rows of the test split
    public_fraction: 0.3               # of the hidden test set, on the public board; the rest is private
    seed: 7                            # fixes the public/private split
    metric: accuracy                   # accuracy | macro_f1 | rmse | auc | {file, function, higher, predicts}
    phases: [{name: main, start: 2026-12-01T00:00:00Z, end: 2027-03-01T00:00:00Z}]
    limits: {daily: 5, total: 100, final_selections: 2}
    weights: {metric: 1.0, latency: 0.0}   # the ranking score: metric x w + latency term (packages)
    sandbox: {time_s: 120, memory_mb: 2048, cpus: 1}
    pool: on-demand                    # the jobs pool scoring runs on
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from oar._core.config_files import invalid, read_yaml
from oar._core.errors import InvalidInputError

SLUG = r"^[a-z0-9][a-z0-9-]{1,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetRef(_Strict):
    name: str = Field(min_length=1, max_length=200)
    version: int | None = Field(None, ge=1)


class BundleMetric(_Strict):
    file: str = Field(min_length=1, max_length=200, description="a Python file beside the competition file")
    function: str = Field("score", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    higher: bool = True
    predicts: str = Field("label", pattern="^(label|score|number)$")


class Phase(_Strict):
    name: str = Field(min_length=1, max_length=60)
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Phase:
        self.start, self.end = _utc(self.start), _utc(self.end)
        if self.end <= self.start:
            raise ValueError(f"phase '{self.name}' ends before it starts")
        return self


class Limits(_Strict):
    daily: int = Field(5, ge=1, le=1000)
    total: int = Field(100, ge=1, le=100000)
    final_selections: int = Field(2, ge=1, le=20)


class Weights(_Strict):
    metric: float = Field(1.0, ge=0)
    latency: float = Field(0.0, ge=0, description="per millisecond of p50 latency at batch 1, subtracted")


class Sandbox(_Strict):
    time_s: float = Field(120.0, gt=0, le=3600)
    memory_mb: int = Field(2048, ge=64, le=65536)
    cpus: int = Field(1, ge=1, le=64)


class CompetitionSpec(_Strict):
    name: str = Field(pattern=SLUG)
    title: str = Field("", max_length=200)
    description: str = Field("", max_length=20000)
    dataset: DatasetRef
    test_rows: int | None = Field(None, ge=2)
    public_fraction: float = Field(0.3, gt=0, lt=1)
    seed: int = 0
    metric: str | BundleMetric = "accuracy"
    phases: list[Phase] = Field(min_length=1, max_length=20)
    limits: Limits = Field(default_factory=Limits)
    weights: Weights = Field(default_factory=Weights)
    sandbox: Sandbox = Field(default_factory=Sandbox)
    pool: str = Field("on-demand", min_length=1, max_length=60)
    tolerance: float = Field(0.01, ge=0, description="largest claimed - reproduced gap not flagged")

    @field_validator("metric")
    @classmethod
    def _known(cls, value: Any) -> Any:
        from oar.competitions.metrics import METRICS

        if isinstance(value, str) and value not in METRICS:
            raise ValueError(f"unknown metric '{value}'; metrics: {', '.join(METRICS)}, or {{file, function}}")
        return value

    @model_validator(mode="after")
    def _phases(self) -> CompetitionSpec:
        for before, after in zip(self.phases, self.phases[1:], strict=False):
            if after.start < before.end:
                raise ValueError(f"phase '{after.name}' starts before phase '{before.name}' ends")
        return self

    @property
    def end(self) -> datetime:
        return self.phases[-1].end


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_spec(raw: Any, source: str) -> CompetitionSpec:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{source}: expected a mapping (name, dataset, metric, phases, ...)")
    try:
        return CompetitionSpec.model_validate(raw)
    except ValidationError as exc:
        raise invalid(source, exc) from None


def read_spec(path: str | Path) -> CompetitionSpec:
    return parse_spec(read_yaml(path), str(path))
