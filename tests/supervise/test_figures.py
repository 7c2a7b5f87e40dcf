"""Live figures from two ``/metrics`` bodies of the server's own metrics registry (oar.serve.metrics)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from oar.serve.metrics import LATENCY_BUCKETS, ServerMetrics
from oar.supervise import LiveFigures, MetricsSnapshot
from oar.supervise.figures import histogram_quantile


def record(metrics: ServerMetrics, model: str, version: int, seconds: np.ndarray, failures: int = 0) -> None:
    child = metrics.for_model(model, version)
    for value in seconds:
        child.request_seconds.observe(float(value))
        child.success.inc()
    for _ in range(failures):
        child.failure.inc()


def bucket_of(value: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper] holding ``value``."""
    bounds = (0.0, *LATENCY_BUCKETS)
    for lower, upper in itertools.pairwise(bounds):
        if value <= upper:
            return lower, upper
    return bounds[-1], float("inf")


def test_figures_between_two_scrapes_count_only_the_window_and_sum_versions() -> None:
    rng = np.random.default_rng(0)
    metrics = ServerMetrics()
    record(metrics, "m", 1, rng.uniform(0.0001, 0.002, 500), failures=2)
    record(metrics, "other", 1, rng.uniform(0.5, 1.0, 300), failures=7)  # another model: not counted
    before = MetricsSnapshot.parse(metrics.exposition().decode(), model="m", at=10.0)
    window = np.concatenate([rng.uniform(0.003, 0.02, 900), rng.uniform(0.2, 0.4, 100)])
    record(metrics, "m", 1, window[:600], failures=3)
    record(metrics, "m", 2, window[600:])  # a rollover in the window: both versions count
    after = MetricsSnapshot.parse(metrics.exposition().decode(), model="m", at=12.0)

    figures = LiveFigures.between(before, after)
    assert figures.window_s == 2.0
    assert figures.requests == 1003 and figures.requests_per_s == pytest.approx(501.5)
    assert figures.errors == 3 and figures.errors_total == 5
    for q, estimate in ((0.5, figures.p50_ms), (0.99, figures.p99_ms)):
        lower, upper = bucket_of(float(np.quantile(window, q)))
        assert lower * 1000 <= estimate <= upper * 1000


def test_quantiles_interpolate_inside_a_bucket_like_prometheus() -> None:
    buckets = {0.1: 0.0, 0.2: 50.0, 0.4: 100.0, float("inf"): 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.2)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.3)
    assert histogram_quantile(0.99, {0.1: 1.0, float("inf"): 10.0}) == 0.1  # in +Inf: the highest finite bound
    assert histogram_quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None  # nothing in the window


def test_an_idle_window_has_no_latency_and_no_rate() -> None:
    metrics = ServerMetrics()
    record(metrics, "m", 1, np.full(10, 0.001))
    text = metrics.exposition().decode()
    figures = LiveFigures.between(MetricsSnapshot.parse(text, "m", at=0.0), MetricsSnapshot.parse(text, "m", at=1.0))
    assert figures.requests == 0 and figures.requests_per_s == 0.0 and figures.p50_ms is None
