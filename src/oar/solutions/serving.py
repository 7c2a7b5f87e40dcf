"""Serve registered models with a real ``oar serve`` process, score them through it, time them, stop it.

Accuracy is measured on test items sent through the server (batched requests), so the figure is
what a client gets, not what the training process saw; latency is the client round trip of single
requests sent one after another (p50/p99), after a short warm-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oar.client import ModelClient
from oar.serve.process import ServerProcess

ACCURACY_BATCH = 32
WARMUP_REQUESTS = 5


@dataclass(frozen=True)
class Served:
    model_id: str
    accuracy: float
    samples: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class TestItems:
    """What is sent: texts (a text model) or an image array under the package's input name."""

    inputs: list[str] | np.ndarray
    labels: list[str]
    input_name: str | None = None  # None: text, sent with ModelClient.predict


def serve_and_measure(
    model_ids: list[str], items: TestItems, requests: int, log_path: Path, progress: Any = None
) -> tuple[list[Served], int | None]:
    """Start ``oar serve`` for ``model_ids``, measure each, stop it; return the measures and its exit code."""
    server = ServerProcess(model_ids, log_path=log_path)
    server.start(timeout=120)
    try:
        with ModelClient(server.endpoint) as client:
            measured = [_measure(client, model_id, items, requests, progress) for model_id in model_ids]
    finally:
        code = server.stop()
    return measured, code


def _measure(client: ModelClient, model_id: str, items: TestItems, requests: int, progress: Any) -> Served:
    predicted: list[str] = []
    for start in range(0, len(items.labels), ACCURACY_BATCH):
        predicted += _labels(client, model_id, items, slice(start, start + ACCURACY_BATCH))
    accuracy = float(np.mean([p == t for p, t in zip(predicted, items.labels, strict=True)]))
    latencies = []
    for i in range(WARMUP_REQUESTS + requests):
        one = slice(i % len(items.labels), i % len(items.labels) + 1)
        started = time.perf_counter()
        _labels(client, model_id, items, one)
        if i >= WARMUP_REQUESTS:
            latencies.append((time.perf_counter() - started) * 1000)
        if progress is not None and i % 10 == 0:
            progress(i, WARMUP_REQUESTS + requests, f"{model_id}: timing requests")
    p50, p99 = np.percentile(latencies, [50, 99])
    return Served(model_id, accuracy, len(items.labels), float(p50), float(p99))


def _labels(client: ModelClient, model_id: str, items: TestItems, part: slice) -> list[str]:
    if items.input_name is None:
        answers = client.predict(model_id=model_id, inputs={"text": list(items.inputs[part])})
        assert isinstance(answers, list)
        return [answer["label"] for answer in answers]
    outputs = client.infer(model_id, {items.input_name: np.asarray(items.inputs[part])})
    return [label.decode() if isinstance(label, bytes) else str(label) for label in outputs["label"]]
