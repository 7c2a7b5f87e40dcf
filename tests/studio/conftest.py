"""A studio on each database, seeded with real things: a dataset, runs with metric histories, model
packages (a small real ONNX network) with lineage, and users of every role with their own API tokens."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

PASSWORD = "correct horse battery"


def studio_config(home: Path, url: str, **settings: object):  # type: ignore[no-untyped-def]
    """The tests' studio: Argon2 at its cheapest (the same code path, a fraction of the cost), chosen here in
    the configuration the app factory receives, never through the environment."""
    from argon2 import profiles

    from oar.studio.config import StudioConfig

    return StudioConfig(home=home, database_url=url, argon2=profiles.CHEAPEST, **settings)  # type: ignore[arg-type]


USERS = {"admin": "admin", "alice": "member", "bob": "member", "vera": "viewer"}


@pytest.fixture(scope="session")
def numeric_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real network (``x`` [n, 4] FP32 -> ``output`` [n, 3]) exported and parity-checked by ``oar.jit``."""
    import torch
    from torch import nn

    import oar
    from oar.export import InputSpec

    torch.manual_seed(0)
    package = oar.jit.save(
        nn.Sequential(nn.Linear(4, 3)),
        tmp_path_factory.mktemp("pkg") / "head",
        input_spec=[InputSpec([None, 4], "float32", "x")],
        name="head",
    )
    return package.path


def small_dataset():
    from oar.data.dataset import DataCard, Dataset

    card = DataCard(
        name="reviews",
        task="text-classification",
        source="written for the studio tests",
        license="CC0",
        labels=["neg", "pos"],
        description="short product reviews",
    )
    texts = [f"review number {i} was {'good' if i % 2 else 'bad'}" for i in range(60)]
    return Dataset.from_records(card, texts, np.array([i % 2 for i in range(60)]))


def _with_lineage(package: Path, target: Path, dataset, run_id: str, parent: str | None = None) -> Path:
    from oar.package import ModelPackage

    shutil.copytree(package, target)
    manifest = ModelPackage.open(target).manifest
    lineage = manifest.lineage.model_copy(update={"dataset": dataset.ref, "run_id": run_id, "parent": parent})
    ModelPackage.write(target, manifest.model_copy(update={"lineage": lineage, "metrics": {"test_accuracy": 0.8}}))
    return target


@dataclass
class StudioWorld:
    app: object
    hub: object
    tokens: dict[str, str]
    runs: list[str]
    home: Path
    extra: dict[str, object] = field(default_factory=dict)

    def client(self, user: str | None = None):
        from fastapi.testclient import TestClient

        headers = {"authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return TestClient(self.app, headers=headers, raise_server_exceptions=False)


def build_world(url: str, home: Path, package: Path, **config: object) -> StudioWorld:
    from oar.hub import Hub
    from oar.studio.app import create_app

    hub = Hub(home=home, url=url)
    dataset = small_dataset()
    dataset_version = hub.register_dataset(dataset, owner="alice")
    runs = []
    for i, lr in enumerate((0.1, 0.01)):
        run = hub.runs.start("train", {"lr": lr, "epochs": 3}, dataset_version, owner="alice")
        history = [
            {"step": s, "epoch": s // 10, "train_loss": 1.0 / (s + 1) + i * 0.1, "lr": lr} for s in range(0, 30, 5)
        ]
        history += [{"step": 29, "valid_accuracy": 0.7 + 0.1 * i}]
        hub.runs.finish(run.id, "finished", {"test_accuracy": 0.7 + 0.1 * i}, history)
        runs.append(run.id)
    staged = home / "staged"
    first = hub.register_model(_with_lineage(package, staged / "s1", dataset_version, runs[0]), "sentiment", "alice")
    hub.register_model(
        _with_lineage(package, staged / "s2", dataset_version, runs[1], parent=first.model_id), "sentiment", "alice"
    )
    hub.register_model(_with_lineage(package, staged / "d1", dataset_version, runs[1]), "digits", "bob")
    hub.model_catalog.update("digits", visibility="public", tags=["vision"])
    hub.model_catalog.update("sentiment", tags=["text"])
    settings = {"signin_attempts": 3, "deployments_enabled": True, **config}
    app = create_app(studio_config(home, url, **settings), hub)
    accounts = app.state.services.accounts
    tokens = {}
    for name, role in USERS.items():
        user = accounts.create_user(name, role, PASSWORD)
        tokens[name] = accounts.issue_token(user.id, "tests")
    return StudioWorld(app, hub, tokens, runs, home)


@pytest.fixture()
def world(database_url: str, tmp_path: Path, numeric_package: Path) -> Iterator[StudioWorld]:
    built = build_world(database_url, tmp_path / "home", numeric_package)
    yield built
    built.app.state.services.close()
