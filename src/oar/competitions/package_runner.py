"""Inside the sandbox: ``python -m oar.competitions.package_runner PACKAGE INPUTS`` writes, in its working
folder, ``predictions.json`` (a label index, or the positive class's probability, per input row) and
``timing.json``: latency p50/p99 at batch 1 over up to ``LATENCY_ROWS`` rows, throughput at batch 32
over every row. It reads nothing but the package and the inputs (which hold no labels).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

LATENCY_ROWS = 100
BATCH = 32


def _rows(path: Path) -> tuple[list[str], list[Any]]:
    ids, values = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            ids.append(item["id"])
            values.append(item.get("text", item.get("x")))
    return ids, values


def _predictor(package_dir: Path) -> Any:
    """A function: a batch of inputs → probabilities ``[batch, classes]``."""
    from oar.runtime import load_runtime
    from oar.runtime.image_classifier import _softmax as image_softmax
    from oar.runtime.text_classifier import _softmax as text_softmax

    runtime = load_runtime(package_dir, intra_op_threads=1)
    activation = runtime.package.manifest.runtime.output_activation
    if hasattr(runtime, "encoder"):
        return lambda batch: text_softmax(runtime.logits(batch)) if activation == "softmax" else runtime.logits(batch)
    shape = [d for d in runtime.input.shape[1:]]

    def images(batch: list[Any]) -> np.ndarray:
        x = np.asarray(batch, dtype=np.float32)
        if all(d > 0 for d in shape):
            x = x.reshape(len(batch), *shape)
        raw = runtime.logits(x)
        return image_softmax(raw) if activation == "softmax" else raw

    return images


def main(argv: list[str]) -> int:
    package_dir, inputs = Path(argv[0]), Path(argv[1])
    ids, values = _rows(inputs)
    predict = _predictor(package_dir)
    predict(values[:1])  # warm-up, not timed
    latencies = []
    for value in values[:LATENCY_ROWS]:
        started = time.perf_counter()
        predict([value])
        latencies.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    probabilities = np.concatenate([predict(values[i : i + BATCH]) for i in range(0, len(values), BATCH)])
    seconds = time.perf_counter() - started
    Path("predictions.json").write_text(
        json.dumps({"ids": ids, "label": probabilities.argmax(axis=1).tolist(), "score": probabilities[:, -1].tolist()})
    )
    timing = {
        "latency_p50_ms": float(np.percentile(latencies, 50)),
        "latency_p99_ms": float(np.percentile(latencies, 99)),
        "throughput_rows_s": len(values) / seconds if seconds > 0 else 0.0,
        "latency_rows": len(latencies),
    }
    Path("timing.json").write_text(json.dumps(timing))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
