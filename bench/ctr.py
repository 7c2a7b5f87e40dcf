"""Test AUC of the recommender trained as `oar train` trains it vs logistic regression, on one split.

The data is the built-in ``synthetic-ctr`` dataset (50,000 generated impressions, seed 0, the
hub's 80/10/10 split): clicks are drawn from a hidden logistic model, so the generator's own click
probability gives the best AUC any model can reach on the test split (``oracle``). The DLRM (fused
``oar_dlrm::bag_interact`` op) is built, batched and trained by the same functions ``oar train``
runs (``oar.train.job``: a ``task: ctr`` job, ``model: dlrm``), its AUC measured by the one the run
records. The baseline is scikit-learn's ``LogisticRegression`` on the same training rows: one-hot
ids (each bag's ids weighted 1/bag size, as the model mean-pools them) plus the standardised dense
features, its ``C`` picked on the validation split. Every AUC is ``sklearn.metrics.roc_auc_score``.

    python bench/ctr.py [--epochs 3] [--lr 2e-3] [--batch 256] [--dim 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from oar.data.builtin import SYNTHETIC_CTR_ROWS, SYNTHETIC_CTR_SEED, load_builtin
from oar.data.dataset import stratified_split
from oar.data.synthetic_ctr import criteo_like


def train_dlrm(args: argparse.Namespace, workdir: str) -> tuple[float, float, float]:
    """(valid AUC, test AUC, seconds) of a DLRM trained through ``oar train``'s own job functions."""
    import torch

    from oar.pipelines.train_job import click_auc
    from oar.train import Trainer
    from oar.train.job import build_model, parse_job, prepare_data

    job = parse_job(
        {
            "task": "ctr",
            "data": {"dataset": "synthetic-ctr", "batch_size": args.batch},
            "model": {"arch": "dlrm", "options": {"dim": args.dim}},
            "trainer": {
                "epochs": args.epochs,
                "lr": args.lr,
                "weight_decay": 0.0,
                "patience": None,
                "monitor": "valid_auc",  # as `oar train` picks for a ctr task
                "threads": args.threads,
                "precision_probe": False,
                "mode": "dynamic",
            },
        }
    )
    data = prepare_data(job, Path(workdir))
    torch.manual_seed(job.trainer.seed)
    model = build_model(job, data)
    started = time.perf_counter()
    Trainer(model, data.train, data.valid, job.trainer, progress=False).fit()
    seconds = time.perf_counter() - started
    return click_auc(model, data.valid), click_auc(model, data.test), seconds


def one_hot(x: np.ndarray, features: dict) -> sp.csr_matrix:
    """Packed rows -> sparse [N, sum(cardinalities)] with 1/bag-size per present id (a mean-pooled bag)."""
    dense_n, cards, bag = features["dense_features"], features["cardinalities"], features["bag"]
    ids = np.rint(x[:, dense_n:]).astype(np.int64).reshape(len(x), len(cards), bag)
    offsets = np.concatenate([[0], np.cumsum(cards)[:-1]])
    present = ids >= 0
    weight = present / np.maximum(present.sum(2, keepdims=True), 1)
    rows = np.broadcast_to(np.arange(len(x))[:, None, None], ids.shape)
    columns = ids + offsets[None, :, None]
    return sp.csr_matrix((weight[present], (rows[present], columns[present])), shape=(len(x), int(sum(cards))))


def logistic_baseline(dataset) -> tuple[float, float, float]:
    """(valid AUC, test AUC, C) of the best of a few regularisation strengths, chosen on validation."""
    features = dataset.card.features
    dense_n = features["dense_features"]
    mean, std = dataset.train.x[:, :dense_n].mean(0), dataset.train.x[:, :dense_n].std(0) + 1e-6

    def design(x: np.ndarray) -> sp.csr_matrix:
        return sp.hstack([sp.csr_matrix((x[:, :dense_n] - mean) / std), one_hot(x, features)]).tocsr()

    train, valid, test = (design(s.x) for s in (dataset.train, dataset.valid, dataset.test))
    best = (-1.0, 0.0, 0.0)
    for c in (0.03, 0.1, 0.3, 1.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(train, dataset.train.y)
        valid_auc = roc_auc_score(dataset.valid.y, model.decision_function(valid))
        if valid_auc > best[0]:
            best = (valid_auc, roc_auc_score(dataset.test.y, model.decision_function(test)), c)
    return best


def oracle_auc(dataset) -> float:
    """AUC of the generator's own click probability on the test split (the ceiling)."""
    generated = criteo_like(SYNTHETIC_CTR_ROWS, seed=SYNTHETIC_CTR_SEED)
    _, _, test = stratified_split(generated.clicks)
    assert np.array_equal(generated.clicks[test], dataset.test.y)
    assert generated.probability is not None
    return float(roc_auc_score(dataset.test.y, generated.probability[test]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    dataset = load_builtin("synthetic-ctr")
    print(f"synthetic-ctr: {dataset.counts()}, click rate {dataset.train.y.mean():.3f}, digest {dataset.digest[:19]}")
    with tempfile.TemporaryDirectory() as workdir:
        dlrm_valid, dlrm_test, seconds = train_dlrm(args, workdir)
    lr_valid, lr_test, c = logistic_baseline(dataset)
    oracle = oracle_auc(dataset)
    head = f"dlrm (fused op, {args.epochs} epochs, {seconds:.0f} s)"
    print(f"{head}: valid AUC {dlrm_valid:.4f}, test AUC {dlrm_test:.4f}")
    print(f"logistic regression (one-hot ids + dense, C={c}): valid AUC {lr_valid:.4f}, test AUC {lr_test:.4f}")
    print(f"oracle (the generator's click probability): test AUC {oracle:.4f}")
    print(f"ratio dlrm / logistic regression (test AUC): {dlrm_test / lr_test:.4f}")
    print(f"ratio of the oracle's lift over chance reached: dlrm {(dlrm_test - 0.5) / (oracle - 0.5):.3f}, "
          f"logistic regression {(lr_test - 0.5) / (oracle - 0.5):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
