"""Prometheus metrics of one server, in its own registry (so several servers can live in one process).

Per model: request outcomes, end-to-end / queue / compute latency histograms,
batch sizes, queue depth and in-flight requests. Label children are bound once
per model, so recording costs a few dictionary-free calls on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

__all__ = ["CONTENT_TYPE_LATEST", "ModelMetrics", "ServerMetrics"]


@dataclass
class ModelMetrics:
    """The metric children of one model version, plus plain counters for the statistics endpoint."""

    success: Counter
    failure: Counter
    request_seconds: Histogram
    queue_seconds: Histogram
    compute_seconds: Histogram
    batch_size: Histogram
    queue_depth: Gauge
    inflight: Gauge
    successes: int = 0
    failures: int = 0
    batches: int = 0
    items: int = 0
    queue_ns: int = 0
    compute_ns: int = 0

    def statistics(self) -> dict[str, int | float]:
        """Cumulative counts and mean times (the per-model statistics endpoint)."""
        done = max(self.successes + self.failures, 1)
        return {
            "success_count": self.successes,
            "failure_count": self.failures,
            "batch_count": self.batches,
            "item_count": self.items,
            "mean_batch_size": self.items / max(self.batches, 1),
            "mean_queue_us": self.queue_ns / done / 1000,
            "mean_compute_us_per_batch": self.compute_ns / max(self.batches, 1) / 1000,
        }


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version")
        self._requests = Counter(
            "oar_inference_requests", "Inference requests by outcome", (*labels, "outcome"), registry=self.registry
        )
        self._request = Histogram(
            "oar_request_duration_seconds",
            "Server-side time from decoded request to outputs",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._queue = Histogram(
            "oar_queue_duration_seconds",
            "Time a request waited for its batch to start",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._compute = Histogram(
            "oar_compute_duration_seconds",
            "Time one batch spent in the model",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._batch = Histogram(
            "oar_batch_size", "Items per model call", labels, buckets=BATCH_BUCKETS, registry=self.registry
        )
        self._depth = Gauge("oar_queue_depth", "Requests waiting in the batch queue", labels, registry=self.registry)
        self._inflight = Gauge(
            "oar_inflight_requests", "Requests admitted and not yet answered", labels, registry=self.registry
        )

    def for_model(self, name: str, version: int) -> ModelMetrics:
        labels = (name, str(version))
        return ModelMetrics(
            success=self._requests.labels(*labels, "success"),
            failure=self._requests.labels(*labels, "failure"),
            request_seconds=self._request.labels(*labels),
            queue_seconds=self._queue.labels(*labels),
            compute_seconds=self._compute.labels(*labels),
            batch_size=self._batch.labels(*labels),
            queue_depth=self._depth.labels(*labels),
            inflight=self._inflight.labels(*labels),
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
