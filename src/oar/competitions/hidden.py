"""The hidden test set: inputs anyone in the competition may download, labels only the scorer reads.

Made once, at creation, from a hub dataset version whose records oar can rebuild (a built-in dataset,
checked against the version's digest): its test split (optionally its first ``test_rows``), each row
an id ``t00001``...; a permutation with the competition's seed puts ``public_fraction`` of the rows on
the public board and the rest on the private one. Labels and the split live in ``hidden/`` (mode 0700,
files 0600) under the competition's folder; no page, API answer or export reads that folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oar._core.errors import InvalidInputError, NotFoundError
from oar.competitions.config import CompetitionSpec
from oar.hub import DatasetVersion, Hub

INPUTS = "inputs.jsonl"
HIDDEN = "hidden"
LABELS = "labels.json"


@dataclass(frozen=True)
class HiddenSet:
    ids: list[str]
    labels: np.ndarray
    public: np.ndarray  # bool per row
    label_names: list[str]


def competition_dir(home: Path, name: str) -> Path:
    return home / "competitions" / name


def dataset_version(hub: Hub, spec: CompetitionSpec) -> DatasetVersion:
    """The version the competition names; a built-in dataset not yet in the hub is registered first."""
    from oar.data.builtin import BUILTIN_DATASETS, load_builtin

    try:
        return hub.datasets.get(spec.dataset.name, spec.dataset.version)
    except NotFoundError:
        if spec.dataset.name not in BUILTIN_DATASETS or spec.dataset.version not in (None, 1):
            raise
        return hub.register_dataset(load_builtin(spec.dataset.name))


def test_split(record: DatasetVersion, rows: int | None) -> tuple[list[Any], np.ndarray, list[str]]:
    from oar.data.builtin import BUILTIN_DATASETS, load_builtin

    if record.name not in BUILTIN_DATASETS:
        known = ", ".join(BUILTIN_DATASETS)
        raise InvalidInputError(
            f"dataset '{record.name}' v{record.version}: the hub holds its card, not its records; "
            f"a competition needs a dataset oar can rebuild ({known})"
        )
    dataset = load_builtin(record.name)
    if dataset.digest != record.digest:
        raise InvalidInputError(f"dataset '{record.name}' v{record.version}: the records here differ from its digest")
    split = dataset.test.head(rows)
    x = split.x.tolist() if isinstance(split.x, np.ndarray) else list(split.x)
    return x, np.asarray(split.y, dtype=np.int64), list(dataset.labels)


def materialize(home: Path, spec: CompetitionSpec, record: DatasetVersion) -> tuple[int, int]:
    """Write the inputs and the hidden labels; (test rows, public rows)."""
    x, y, names = test_split(record, spec.test_rows)
    if len(y) < 2:
        raise InvalidInputError(f"dataset '{record.name}' v{record.version} has fewer than 2 test rows")
    n = len(y)
    n_public = min(n - 1, max(1, round(n * spec.public_fraction)))
    order = np.random.default_rng(spec.seed).permutation(n)
    public = np.zeros(n, dtype=bool)
    public[order[:n_public]] = True
    ids = [f"t{i:05d}" for i in range(n)]
    root = competition_dir(home, spec.name)
    hidden = root / HIDDEN
    hidden.mkdir(parents=True, exist_ok=True)
    os.chmod(hidden, 0o700)
    key = "text" if x and isinstance(x[0], str) else "x"
    lines = (json.dumps({"id": i, key: v}, ensure_ascii=False) + "\n" for i, v in zip(ids, x, strict=True))
    _write(root / INPUTS, "".join(lines))
    payload = {"ids": ids, "labels": y.tolist(), "public": public.tolist(), "label_names": names}
    _write(hidden / LABELS, json.dumps(payload), mode=0o600)
    return n, n_public


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    staging = path.with_name(path.name + ".tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(staging, mode)
    os.replace(staging, path)


def input_ids(home: Path, name: str) -> list[str]:
    with (competition_dir(home, name) / INPUTS).open(encoding="utf-8") as lines:
        return [json.loads(line)["id"] for line in lines if line.strip()]


def load_hidden(home: Path, name: str) -> HiddenSet:
    """The labels and the split: for the scoring job only."""
    payload = json.loads((competition_dir(home, name) / HIDDEN / LABELS).read_text(encoding="utf-8"))
    return HiddenSet(
        payload["ids"], np.asarray(payload["labels"]), np.asarray(payload["public"], dtype=bool), payload["label_names"]
    )
