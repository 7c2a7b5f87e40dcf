"""Cost of the package's padding dispatch on the text hot path: ``TokenBatchRunner`` vs the direct call.

Before padding was recorded per package, ``TextClassifierRuntime.logits`` called ``session.run`` itself
(one call below 16 texts, length groups above). Now a ``longest`` package goes through
``TokenBatchRunner``; this times both on the same ids, alternating in one process, and prints µs per
call and the ratio (new / direct). It builds an untrained quickstart-sized TextCNN package (the graph's
cost does not depend on training) unless --package names one.

    taskset -c 0 python bench/padding_runner.py [--package DIR] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

BENCH_TEXT = "质量太差了，用了两天就坏了，非常失望。"  # the review bench/serve.py sends


def _direct(runtime) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:  # type: ignore[no-untyped-def]
    """The code path before ``TokenBatchRunner``: session.run, with length groups at 16 texts or more."""
    from oar.runtime.padding import _length_groups

    session, name = runtime.session, runtime.session.get_inputs()[0].name

    def run(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if len(ids) < 16:
            return session.run(None, {name: ids})[0]
        order = np.argsort(lengths, kind="stable")
        out = None
        for group in _length_groups(lengths[order]):
            rows = order[group]
            logits = session.run(None, {name: ids[rows, : int(lengths[rows[-1]])]})[0]
            if out is None:
                out = np.empty((len(ids), logits.shape[1]), dtype=logits.dtype)
            out[rows] = logits
        return out

    return run


def _build_package(root: Path) -> Path:
    import torch

    from oar.data import load_builtin
    from oar.data.tokenizer import train_wordpiece
    from oar.export.lineage_data import tensor_batches
    from oar.export.text_package import save_text_classifier
    from oar.models import TextCNNClassifier

    texts = [str(t) for t in load_builtin("chnsenti").train.x[:3000]]
    tokenizer = train_wordpiece(texts, vocab_size=4000)
    torch.manual_seed(0)
    model = TextCNNClassifier(tokenizer.get_vocab_size(), 2)
    path = root / "package"
    save_text_classifier(
        model, path, name="bench", tokenizer=tokenizer, labels=["neg", "pos"],
        parity_batches=tensor_batches(tokenizer, texts[:256]),
    )  # fmt: skip
    return path


def _us_per_call(run: Callable, ids: np.ndarray, lengths: np.ndarray, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        run(ids, lengths)
    return (time.perf_counter() - start) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", help="a text-classification package directory")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from oar.data import load_builtin
    from oar.package import ModelPackage
    from oar.runtime import TextClassifierRuntime

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.package) if args.package else _build_package(Path(tmp))
        runtime = TextClassifierRuntime(ModelPackage.open(path, verify=False))
        print(f"padding: {runtime.padding.strategy} (invariant {runtime.padding.invariant})\n")
        reviews = [str(t) for t in load_builtin("chnsenti").test.x[:64]]
        direct = _direct(runtime)
        print("| batch | direct µs/call | runner µs/call | ratio |\n|---|---:|---:|---:|")
        for label, texts, repeat in (("1 review", [BENCH_TEXT], 2000), ("64 test reviews", reviews, 100)):
            ids, lengths = runtime.encoder.encode(texts)
            np.testing.assert_array_equal(direct(ids, lengths), runtime.runner.run(ids, lengths))
            old, new = [], []
            for _ in range(args.rounds):
                old.append(_us_per_call(direct, ids, lengths, repeat))
                new.append(_us_per_call(runtime.runner.run, ids, lengths, repeat))
            a, b = statistics.median(old), statistics.median(new)
            print(f"| {label} | {a:.1f} | {b:.1f} | {b / a:.3f} |")


if __name__ == "__main__":
    main()
