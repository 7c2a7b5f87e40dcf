"""Live figures of a served process from its Prometheus ``/metrics``: req/s, p50/p99 latency, errors.

Counters and histograms only ever grow, so figures for a window come from
the difference of two scrapes: requests per second from the request
counters, latency quantiles from the bucket deltas of the request-duration
histogram (interpolated inside a bucket, as Prometheus's
``histogram_quantile`` does), errors from the failure counter.

    before = MetricsSnapshot.scrape("http://127.0.0.1:8600", model="chnsenti-cls")
    time.sleep(5)
    figures = LiveFigures.between(before, MetricsSnapshot.scrape(..., model="chnsenti-cls"))
    figures.requests_per_s, figures.p99_ms, figures.errors
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from oar._core.errors import OarError

REQUESTS = "oar_inference_requests_total"
DURATION_BUCKET = "oar_request_duration_seconds_bucket"


@dataclass(frozen=True)
class MetricsSnapshot:
    """Request outcomes and the latency histogram of one model (every version summed), at one moment."""

    at: float  # time.monotonic() of the scrape
    outcomes: dict[str, float] = field(default_factory=dict)  # success / failure / cancelled
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound (le) -> cumulative count

    @classmethod
    def parse(cls, text: str, model: str | None = None, at: float | None = None) -> MetricsSnapshot:
        """Read a ``/metrics`` body; ``model`` keeps only that model's samples (None: every model)."""
        outcomes: dict[str, float] = defaultdict(float)
        buckets: dict[float, float] = defaultdict(float)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if model is not None and sample.labels.get("model") != model:
                    continue
                if sample.name == REQUESTS:
                    outcomes[sample.labels["outcome"]] += sample.value
                elif sample.name == DURATION_BUCKET:
                    buckets[float(sample.labels["le"])] += sample.value
        return cls(time.monotonic() if at is None else at, dict(outcomes), dict(buckets))

    @classmethod
    def scrape(cls, endpoint: str, model: str | None = None, timeout: float = 5.0) -> MetricsSnapshot:
        """GET ``endpoint/metrics`` and parse it."""
        try:
            response = httpx.get(endpoint.rstrip("/") + "/metrics", timeout=timeout)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OarError(f"cannot read metrics from {endpoint}/metrics: {exc}") from None
        return cls.parse(response.text, model)

    @property
    def requests(self) -> float:
        return sum(self.outcomes.values())


@dataclass(frozen=True)
class LiveFigures:
    """What a deployment did between two snapshots."""

    window_s: float
    requests: int  # answered (success + failure + cancelled)
    requests_per_s: float
    errors: int  # failures in the window
    p50_ms: float | None  # None when no request succeeded in the window
    p99_ms: float | None
    errors_total: int  # failures since the process started

    @classmethod
    def between(cls, before: MetricsSnapshot, after: MetricsSnapshot) -> LiveFigures:
        window = max(after.at - before.at, 1e-9)
        requests = after.requests - before.requests
        deltas = {le: count - before.buckets.get(le, 0.0) for le, count in after.buckets.items()}
        failures = after.outcomes.get("failure", 0.0)
        return cls(
            window_s=window,
            requests=round(requests),
            requests_per_s=requests / window,
            errors=round(failures - before.outcomes.get("failure", 0.0)),
            p50_ms=_ms(histogram_quantile(0.5, deltas)),
            p99_ms=_ms(histogram_quantile(0.99, deltas)),
            errors_total=round(failures),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The ``q`` quantile of a cumulative histogram ``{upper bound: count}``, as Prometheus computes it:
    linear inside the bucket holding the rank; the highest finite bound when the rank falls in +Inf."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, count
    return lower


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
