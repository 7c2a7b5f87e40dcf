"""The learning path: notebooks from a first model to a deployed one, shipped with oar.

``index.json`` lists them in order (name, title, summary). Each runs in a reduced mode with
``OAR_TUTORIAL_FAST=1`` (CI executes every one with nbclient); the studio's Learn list copies one
into the user's workspace and records when its last cell ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from oar._core.errors import NotFoundError

FOLDER = Path(__file__).parent


@dataclass(frozen=True)
class Tutorial:
    name: str
    title: str
    summary: str

    @property
    def path(self) -> Path:
        return FOLDER / f"{self.name}.ipynb"


def tutorials() -> list[Tutorial]:
    return [Tutorial(**entry) for entry in json.loads((FOLDER / "index.json").read_text())]


def tutorial(name: str) -> Tutorial:
    for entry in tutorials():
        if entry.name == name:
            return entry
    raise NotFoundError(f"no tutorial '{name}'; tutorials: {', '.join(t.name for t in tutorials())}")
