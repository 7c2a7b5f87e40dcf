"""Linear baselines for the built-in text datasets: what a neural model should be compared against.

On oar's own fixed split of the dataset (the one ``oar train`` uses), fits scikit-learn's TF-IDF
n-grams with logistic regression and with a linear SVM, and NB-weighted logistic regression (each
n-gram scaled by its log-count ratio between the classes, binary datasets only). The regularisation
strength is picked on the valid split; the test accuracy is reported for that pick. Seconds on two
cores; no torch needed.

    python bench/text_baselines.py                              # chnsenti, character n-grams
    python bench/text_baselines.py --dataset rotten-tomatoes    # English reviews, word n-grams
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from oar.data import load_builtin

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
ANALYZERS = {"chnsenti": ("char", (1, 3), (1, 4)), "rotten-tomatoes": ("word", (1, 2), (1, 3))}


def _nb_weights(x: sparse.csr_matrix, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Log-count ratio of each feature between the two classes (Wang & Manning's NB features)."""
    binary = (x > 0).astype(np.float64)
    positive = np.asarray(binary[y == 1].sum(axis=0)).ravel() + alpha
    negative = np.asarray(binary[y == 0].sum(axis=0)).ravel() + alpha
    return np.log((positive / positive.sum()) / (negative / negative.sum()))


def _pick(fit: Callable[[float], object], x_valid, y_valid, x_test, y_test) -> tuple[float, float, float]:
    """(C, valid accuracy, test accuracy) of the C that does best on valid."""
    scored = []
    for c in C_GRID:
        model = fit(c)
        scored.append((float((model.predict(x_valid) == y_valid).mean()), c, model))
    valid, c, model = max(scored, key=lambda s: s[0])
    return c, valid, float((model.predict(x_test) == y_test).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="chnsenti", choices=sorted(ANALYZERS))
    args = parser.parse_args()
    dataset = load_builtin(args.dataset)
    analyzer, tfidf_range, nb_range = ANALYZERS[args.dataset]
    train, valid, test = dataset.train, dataset.valid, dataset.test
    y_train, y_valid, y_test = (np.asarray(s.y) for s in (train, valid, test))
    print(f"{args.dataset}: train {len(train)}, valid {len(valid)}, test {len(test)}; analyzer {analyzer}")
    print("\n| model | C | valid | test | seconds |\n|---|---:|---:|---:|---:|")

    started = time.perf_counter()
    tfidf = TfidfVectorizer(analyzer=analyzer, ngram_range=tfidf_range, sublinear_tf=True, min_df=1)
    x_train = tfidf.fit_transform(train.x)
    x_valid, x_test = tfidf.transform(valid.x), tfidf.transform(test.x)
    grams = f"{analyzer} {tfidf_range[0]}-{tfidf_range[1]}-grams"
    rows = [
        (f"TF-IDF {grams} + logistic regression", lambda c: LogisticRegression(C=c, max_iter=2000)),
        (f"TF-IDF {grams} + linear SVM", lambda c: LinearSVC(C=c / 10)),
    ]
    for name, make in rows:
        start = time.perf_counter()
        c, valid_acc, test_acc = _pick(
            lambda c, make=make: make(c).fit(x_train, y_train), x_valid, y_valid, x_test, y_test
        )
        print(f"| {name} | {c:g} | {valid_acc:.4f} | {test_acc:.4f} | {time.perf_counter() - start:.0f} |")

    if len(dataset.labels) == 2:
        start = time.perf_counter()
        counts = TfidfVectorizer(analyzer=analyzer, ngram_range=nb_range, use_idf=False, norm=None, binary=True)
        b_train = counts.fit_transform(train.x)
        r = sparse.diags(_nb_weights(b_train, y_train))
        nb_train, nb_valid, nb_test = (m @ r for m in (b_train, counts.transform(valid.x), counts.transform(test.x)))
        c, valid_acc, test_acc = _pick(
            lambda c: LogisticRegression(C=c / 10, max_iter=2000).fit(nb_train, y_train),
            nb_valid,
            y_valid,
            nb_test,
            y_test,
        )
        name = f"NB-weighted logistic regression, {analyzer} {nb_range[0]}-{nb_range[1]}-grams"
        print(f"| {name} | {c / 10:g} | {valid_acc:.4f} | {test_acc:.4f} | {time.perf_counter() - start:.0f} |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
