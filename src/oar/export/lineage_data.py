"""The real data behind a registered model: the dataset its lineage names, checked by digest.

Parity checks, calibration and accuracy gates all need the model's own data, not random
tensors; the manifest's ``lineage.dataset`` says which built-in dataset (and which content)
that was, so nothing has to be passed by hand.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tokenizers import Tokenizer

from oar._core.errors import OarError
from oar.data import BUILTIN_DATASETS, Dataset, load_builtin
from oar.package import ModelPackage


def dataset_of(package: ModelPackage, override: str | None = None) -> Dataset:
    """The dataset ``package`` was trained on (or ``override``), with the labels it predicts."""
    ref = package.manifest.lineage.dataset or {}
    name = override or ref.get("name")
    if not name:
        raise OarError(
            f"package {package.model_id} names no dataset in its lineage; pass --dataset with one of "
            f"{', '.join(BUILTIN_DATASETS)}"
        )
    dataset = load_builtin(name)
    if override is None and ref.get("digest") and ref["digest"] != dataset.digest:
        raise OarError(
            f"dataset '{name}' has changed since {package.model_id} was trained (digest {ref['digest'][:19]} "
            f"vs {dataset.digest[:19]}); pass --dataset to evaluate on the current content anyway"
        )
    if dataset.labels != package.manifest.labels:
        raise OarError(
            f"dataset '{name}' has labels {dataset.labels} but {package.model_id} predicts "
            f"{package.manifest.labels}; pick the dataset it was trained on"
        )
    return dataset


def token_batches(tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 64) -> Iterator[np.ndarray]:
    """Batches of ids padded to their longest text, exactly as the runtime tokenises."""
    for start in range(0, len(texts), batch_size):
        encodings = tokenizer.encode_batch(list(texts[start : start + batch_size]))
        yield np.array([e.ids for e in encodings], dtype=np.int64)


def tensor_batches(tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 64) -> Iterator[torch.Tensor]:
    for batch in token_batches(tokenizer, texts, batch_size):
        yield torch.from_numpy(batch)


def sample(texts: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """A fixed random sample of ``n`` texts (all of them when there are fewer)."""
    if n >= len(texts):
        return list(texts)
    index = np.random.default_rng(seed).choice(len(texts), size=n, replace=False)
    return [texts[i] for i in sorted(index)]
