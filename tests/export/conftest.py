"""Fixtures for export tests: a private copy of the shared smoke model, so new versions stay ours."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def smoke_copy(hub, trained, request):
    """The shared smoke model registered again under a name private to this test module."""
    name = f"export-{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}"
    return hub.register_model(trained.model.path, name)
