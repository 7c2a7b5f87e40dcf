"""Shared fixtures: an isolated OAR_HOME per session, and one small real model trained once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SMOKE_LIMIT = 3000  # training texts for the shared smoke model: seconds, not minutes


@pytest.fixture(scope="session")
def oar_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test session gets its own hub; the user's ~/.oar is never touched."""
    home = tmp_path_factory.mktemp("oar-home")
    previous = os.environ.get("OAR_HOME")
    os.environ["OAR_HOME"] = str(home)
    os.environ.pop("OAR_DATABASE_URL", None)
    yield home
    if previous is None:
        os.environ.pop("OAR_HOME", None)
    else:
        os.environ["OAR_HOME"] = previous


@pytest.fixture(scope="session")
def hub(oar_home: Path):
    from oar.hub import Hub

    return Hub()


@pytest.fixture(scope="session")
def trained(hub):
    """A real chnsenti classifier (reduced data, one epoch), exported and registered as 'chnsenti-smoke'."""
    from oar.pipelines import TextClassifierRecipe, train_text_classifier
    from oar.train import TrainerConfig

    recipe = TextClassifierRecipe(limit=SMOKE_LIMIT, trainer=TrainerConfig(epochs=1, patience=None))
    return train_text_classifier("chnsenti", "chnsenti-smoke", recipe, hub, progress=False)


@pytest.fixture(scope="session")
def server(trained):
    """``oar serve`` started for real as a subprocess on a free loopback port."""
    from oar.serve.process import ServerProcess

    with ServerProcess([trained.model.model_id]) as process:
        yield process
