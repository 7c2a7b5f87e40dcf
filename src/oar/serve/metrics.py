"""Prometheus metrics of one server, in its own registry (so several servers can live in one process).

Per model: request outcomes, end-to-end / queue / compute latency histograms,
batch sizes, queue depth and in-flight requests. Label children are bound once
per model, so recording costs a few dictionary-free calls on the hot path.

With ``oar serve --workers N`` every worker records into prometheus_client's
multiprocess mode (mmap-backed values in a directory the supervisor creates and
names in ``PROMETHEUS_MULTIPROC_DIR`` before the workers start), and
``/metrics`` merges all workers' files, so any worker answers for the whole
server. One process (``--workers 1``, tests, embedding) keeps plain in-memory
values in its own registry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from oar._core.errors import OarError

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

__all__ = ["CONTENT_TYPE_LATEST", "MULTIPROCESS_ENV", "ModelMetrics", "ServerMetrics"]


@dataclass
class ModelMetrics:
    """The metric children of one model version, plus plain counters for the statistics endpoint."""

    success: Counter
    failure: Counter
    cancelled: Counter  # the client went away (closed the connection, reset the stream) before its answer
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
        """Cumulative counts and mean times (the per-model statistics endpoint).

        These are plain counters of this process: with ``--workers N`` they cover only the worker that
        answers the request (``/metrics`` is the whole server's view).
        """
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
    """The metric families of one server; ``exposition()`` is the ``/metrics`` body.

    ``multiprocess_dir`` (a worker of ``--workers N``): the values live in that directory's mmap files
    (prometheus_client's multiprocess mode, which ``PROMETHEUS_MULTIPROC_DIR`` must have switched on
    before prometheus_client was imported) and the exposition merges every worker's files.
    """

    def __init__(self, multiprocess_dir: str | Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._exposed = self.registry
        if multiprocess_dir is not None:
            self._exposed = _multiprocess_registry(Path(multiprocess_dir))
        labels = ("model", "version")
        self._requests = Counter(
            "oar_inference_requests",
            "Inference requests by outcome (success, failure, cancelled)",
            (*labels, "outcome"),
            registry=self.registry,
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
        # Summed over the live workers in multiprocess mode (ignored in one process).
        self._depth = Gauge(
            "oar_queue_depth",
            "Requests waiting in the batch queue",
            labels,
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._inflight = Gauge(
            "oar_inflight_requests",
            "Requests admitted and not yet answered",
            labels,
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def for_model(self, name: str, version: int) -> ModelMetrics:
        labels = (name, str(version))
        return ModelMetrics(
            success=self._requests.labels(*labels, "success"),
            failure=self._requests.labels(*labels, "failure"),
            cancelled=self._requests.labels(*labels, "cancelled"),
            request_seconds=self._request.labels(*labels),
            queue_seconds=self._queue.labels(*labels),
            compute_seconds=self._compute.labels(*labels),
            batch_size=self._batch.labels(*labels),
            queue_depth=self._depth.labels(*labels),
            inflight=self._inflight.labels(*labels),
        )

    def exposition(self) -> bytes:
        """The Prometheus text format: this server's metrics (all workers' merged in multiprocess mode)."""
        return generate_latest(self._exposed)


def _multiprocess_registry(directory: Path) -> CollectorRegistry:
    """A registry whose one collector merges the mmap files of every process writing into ``directory``."""
    if values.ValueClass is values.MutexValue or os.environ.get(MULTIPROCESS_ENV) != str(directory):
        raise OarError(
            f"multiprocess metrics need {MULTIPROCESS_ENV}={directory} in the environment before "
            "prometheus_client is imported (the worker supervisor sets it)"
        )
    if not directory.is_dir():
        raise OarError(f"metrics directory {directory} does not exist")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return registry
