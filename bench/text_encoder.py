"""Tokenizing cost per text: ``TextEncoder`` vs the package's ``tokenizers`` tokenizer, in one process.

Runs both on the same batches of 64 texts (chnsenti's test reviews, then the serving benchmark's one
review repeated), alternating, and prints µs per text and the ratio. Pin it to one core for steadier
figures; ids are checked equal before timing.

    taskset -c 0 python bench/text_encoder.py --home $OAR_HOME --model chnsenti-cls
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

BENCH_TEXT = "质量太差了，用了两天就坏了，非常失望。"  # the review bench/serve.py sends


def _per_text_us(encode: Callable[[list[str]], object], batches: list[list[str]], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for batch in batches:
            encode(batch)
    return (time.perf_counter() - start) / (repeat * sum(len(b) for b in batches)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="OAR_HOME holding the model")
    parser.add_argument("--model", default="chnsenti-cls")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ["OAR_HOME"] = args.home
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from oar.data import load_builtin
    from oar.hub import Hub
    from oar.runtime.text_classifier import TextClassifierRuntime
    from oar.serve.repository import parse_model_spec

    runtime = TextClassifierRuntime(Hub().open_package(*parse_model_spec(args.model)))
    tokenizer, encoder = runtime.tokenizer, runtime.encoder
    reviews = [str(t) for t in load_builtin("chnsenti").test.x]
    workloads = {
        f"chnsenti test reviews ({np.mean([len(t) for t in reviews]):.0f} chars on average)": reviews,
        f"bench/serve.py's review ({len(BENCH_TEXT)} chars)": [BENCH_TEXT] * 640,
    }
    print(f"model {args.model}; direct path: {encoder.direct}\n")
    print("| texts | tokenizers µs/text | TextEncoder µs/text | ratio |\n|---|---:|---:|---:|")
    for name, texts in workloads.items():
        batches = [texts[i : i + 64] for i in range(0, len(texts), 64)]
        for batch in batches:
            expected = np.array([e.ids for e in tokenizer.encode_batch_fast(batch)], dtype=np.int64)
            np.testing.assert_array_equal(encoder.encode(batch)[0], expected)
        library, ours = [], []
        for _ in range(args.rounds):
            library.append(_per_text_us(tokenizer.encode_batch_fast, batches, 3))
            ours.append(_per_text_us(encoder.encode, batches, 3))
        lib, own = statistics.median(library), statistics.median(ours)
        print(f"| {name} | {lib:.1f} | {own:.1f} | {lib / own:.2f}x faster |")


if __name__ == "__main__":
    main()
