"""The metric registry, and an organizer's own metric loaded from the competition bundle.

Every metric takes ``(y_true, y_pred)`` as NumPy arrays (labels as integer class indices; for AUC the
prediction is the positive class's score; for RMSE numbers) and returns one float. ``higher`` says
which way the leaderboard sorts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oar._core.errors import InvalidInputError


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher: bool  # True: larger is better
    predicts: str  # "label" (a class index or name), "score" (a float in [0, 1]), "number"


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred)) if len(y_true) else 0.0


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    scores = []
    for label in np.unique(np.concatenate([y_true, y_pred])):
        tp = float(np.sum((y_true == label) & (y_pred == label)))
        fp = float(np.sum((y_true != label) & (y_pred == label)))
        fn = float(np.sum((y_true == label) & (y_pred != label)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    diff = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2))) if len(diff) else 0.0


def auc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """ROC AUC of the positive class (label 1) by the rank statistic, ties counted half."""
    positive = np.asarray(y_true) == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return 0.5
    order = np.argsort(y_pred, kind="mergesort")
    ranks = np.empty(len(order), dtype=np.float64)
    sorted_scores = np.asarray(y_pred, dtype=np.float64)[order]
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


METRICS = {
    "accuracy": Metric("accuracy", accuracy, True, "label"),
    "macro_f1": Metric("macro_f1", macro_f1, True, "label"),
    "rmse": Metric("rmse", rmse, False, "number"),
    "auc": Metric("auc", auc, True, "score"),
}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown metric '{name}'; metrics: {', '.join(METRICS)}, or a bundle function"
        ) from None


def bundle_metric(path: Path, function: str, higher: bool, predicts: str) -> Metric:
    """``function`` of the Python file ``path`` in the competition's bundle (run only inside a scoring job)."""
    spec = importlib.util.spec_from_file_location(f"oar_competition_metric_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise InvalidInputError(f"cannot load the metric file {path.name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, function, None)
    if not callable(fn):
        raise InvalidInputError(f"{path.name} has no function '{function}'")
    return Metric(f"{path.stem}.{function}", lambda t, p: float(fn(t, p)), higher, predicts)
