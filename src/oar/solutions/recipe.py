"""A solution recipe: one ``recipe.yaml`` per directory under ``oar/solutions/recipes/``, validated before it runs.

A recipe names its *flow* (which chain of existing pipelines it drives), the settings of that flow
(an ``oar train`` job, a quantization method, a few-shot budget), the overrides its ``--reduced`` mode
applies, and the metrics a run is expected to reach, each with a tolerance. Unknown keys are errors,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from oar._core.errors import InvalidInputError, NotFoundError

RECIPE_FILE = "recipe.yaml"
FLOWS = ("text-job", "image-int8", "fewshot")


class Expected(BaseModel):
    """A metric a run should reach: ``value`` give or take ``tolerance``, in the direction ``better``."""

    model_config = ConfigDict(extra="forbid")

    value: float
    tolerance: float = Field(0.0, ge=0)
    better: Literal["higher", "lower"] = "higher"

    def bound(self) -> float:
        return self.value - self.tolerance if self.better == "higher" else self.value + self.tolerance

    def met_by(self, measured: float) -> bool:
        return measured >= self.bound() if self.better == "higher" else measured <= self.bound()


class QuantizeSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = "int8-static"
    max_accuracy_drop: float = Field(1.0, ge=0)
    calibration_samples: int = Field(256, ge=1)


class FewShotSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    shots: int = Field(16, ge=1, description="training examples per class")
    seed: int = 0
    options: dict[str, Any] = Field(default_factory=dict, description="further keyword arguments of train_fewshot")


class ServeSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: int = Field(200, ge=10, description="sequential single-item requests timed for p50/p99")
    accuracy_samples: int = Field(256, ge=1, description="test items sent through the server and scored")


class ReducedSection(BaseModel):
    """What ``--reduced`` changes: deep-merged into the full settings (a few epochs, a small subset)."""

    model_config = ConfigDict(extra="forbid")

    job: dict[str, Any] = Field(default_factory=dict)
    fewshot: dict[str, Any] = Field(default_factory=dict)
    quantize: dict[str, Any] = Field(default_factory=dict)
    serve: dict[str, Any] = Field(default_factory=dict)


class ExpectedSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full: dict[str, Expected] = Field(default_factory=dict)
    reduced: dict[str, Expected] = Field(default_factory=dict)


class Recipe(BaseModel):
    """What ``recipe.yaml`` holds. ``job`` is an ``oar train`` job file, as it would be written on its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    summary: str = ""
    flow: Literal["text-job", "image-int8", "fewshot"]
    job: dict[str, Any] | None = None
    quantize: QuantizeSection | None = None
    fewshot: FewShotSection | None = None
    serve: ServeSection = Field(default_factory=ServeSection)
    reduced: ReducedSection = Field(default_factory=ReducedSection)
    expected: ExpectedSection = Field(default_factory=ExpectedSection)

    @model_validator(mode="after")
    def _sections_of_flow(self) -> Recipe:
        needs = {"text-job": ("job",), "image-int8": ("job", "quantize"), "fewshot": ("fewshot",)}[self.flow]
        missing = [section for section in needs if getattr(self, section) is None]
        if missing:
            raise ValueError(f"flow '{self.flow}' needs the section(s): {', '.join(missing)}")
        return self

    def resolved(self, reduced: bool) -> Recipe:
        """The recipe as it runs: the full settings, or those with the ``reduced`` overrides merged in."""
        if not reduced:
            return self
        data = self.model_dump(mode="json")
        for section, overrides in self.reduced.model_dump().items():
            if overrides:
                data[section] = deep_merge(data.get(section) or {}, overrides)
        return Recipe.model_validate(data)

    def expectations(self, reduced: bool) -> dict[str, Expected]:
        return self.expected.reduced if reduced else self.expected.full


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class RecipeEntry:
    name: str
    directory: Path


def recipes_root() -> Path:
    return Path(str(resources.files("oar.solutions") / "recipes"))


def known_recipes(root: Path | None = None) -> list[RecipeEntry]:
    """Every directory under the recipes folder that holds a ``recipe.yaml``, by name."""
    root = root or recipes_root()
    return [
        RecipeEntry(path.name, path)
        for path in sorted(root.iterdir())
        if path.is_dir() and (path / RECIPE_FILE).is_file()
    ]


def find_recipe(name: str, root: Path | None = None) -> RecipeEntry:
    entries = known_recipes(root)
    for entry in entries:
        if entry.name == name:
            return entry
    listed = ", ".join(entry.name for entry in entries) or "none"
    raise NotFoundError(f"unknown recipe '{name}'; known recipes: {listed} (`oar solutions list`)")


def load_recipe(path: Path) -> Recipe:
    """Read and validate ``path`` (a recipe.yaml); every problem is listed with its key path."""
    from oar._core.config_files import invalid, read_yaml  # PyYAML: the train extra, which running needs anyway

    raw = read_yaml(path, "recipe file")
    if not isinstance(raw, dict):
        raise InvalidInputError(f"recipe file {path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        recipe = Recipe.model_validate(raw)
        for mode in (False, True):
            recipe.resolved(mode)
    except ValidationError as exc:
        raise invalid(f"recipe file {path}", exc) from None
    if recipe.name != path.parent.name:
        raise InvalidInputError(f"recipe file {path}: name '{recipe.name}' differs from its directory")
    return recipe
