"""Fixtures for the supervision tests: a hub with a small real model in three versions."""

from __future__ import annotations

from pathlib import Path

import pytest

MODEL = "sv-head"


def register_head(hub, tmp: Path, seed: int) -> int:
    """A tiny real network (``x`` [n, 4] FP32 -> ``output`` [n, 3]), exported, checked, registered."""
    import torch
    from torch import nn

    import oar
    from oar.export import InputSpec

    torch.manual_seed(seed)
    head = nn.Linear(4, 3)
    package = oar.jit.save(head, tmp / f"head-{seed}", input_spec=[InputSpec([None, 4], "float32", "x")], name=MODEL)
    return hub.register_model(package.path).version


@pytest.fixture(scope="session")
def head_versions(hub, oar_home: Path, tmp_path_factory: pytest.TempPathFactory) -> list[int]:
    """Versions 1, 2, 3 of ``sv-head``, each with different weights."""
    tmp = tmp_path_factory.mktemp("heads")
    return [register_head(hub, tmp, seed) for seed in (11, 12, 13)]
