"""Job tests point ``OAR_HOME`` at their own hubs (schedulers and attempts read it from the environment);
these fixtures put the session's hub back afterwards, so the tests that follow find their models."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def _restoring_oar_home() -> Iterator[None]:
    saved = os.environ.get("OAR_HOME")
    yield
    if saved is None:
        os.environ.pop("OAR_HOME", None)
    else:
        os.environ["OAR_HOME"] = saved


@pytest.fixture(autouse=True, scope="module")
def _module_oar_home() -> Iterator[None]:
    yield from _restoring_oar_home()


@pytest.fixture(autouse=True)
def _test_oar_home() -> Iterator[None]:
    yield from _restoring_oar_home()
