"""How many replicas a deployment wants, from the load its replicas report: a pure policy, unit-tested.

The signal is what each replica's ``/metrics`` says *now*: requests in flight (admitted, not yet
answered, plus those waiting for a batch) summed over the replicas, averaged over a short window,
and the mean time a request waited for its batch in that window. Scaling up is quick (one step
per ``up_cooldown_s``, straight to what the load needs), scaling down is slow and one replica at a
time (``down_cooldown_s`` after any change), and the two thresholds leave a band where nothing
moves (hysteresis), so a load near a boundary does not make replicas come and go.

    policy = AutoscalePolicy(target_in_flight=4)
    policy.desired(current=2, low=1, high=4, load=Load(in_flight=13.0, queue_wait_ms=3.0),
                   since_up_s=60, since_change_s=60)   # 4
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

IN_FLIGHT = ("oar_inflight_requests", "oar_queue_depth")
QUEUE_WAIT = "oar_queue_duration_seconds"


@dataclass(frozen=True)
class Load:
    """The whole deployment's load over the last window."""

    in_flight: float  # requests in flight, summed over the replicas (mean over the window)
    queue_wait_ms: float = 0.0  # mean wait for a batch in the window


@dataclass(frozen=True)
class AutoscalePolicy:
    """Scale up above ``target_in_flight * up_ratio`` per replica (or a queue wait over
    ``max_queue_wait_ms``); down when one replica fewer would carry under ``target * down_ratio`` each."""

    target_in_flight: float = 4.0
    up_ratio: float = 1.0
    down_ratio: float = 0.5
    max_queue_wait_ms: float = 50.0
    up_cooldown_s: float = 5.0
    down_cooldown_s: float = 30.0
    interval_s: float = 1.0  # how often replicas are sampled
    window_s: float = 5.0  # samples averaged into one Load

    def __post_init__(self) -> None:
        if self.target_in_flight <= 0 or not 0 < self.down_ratio < self.up_ratio:
            raise ValueError("need target_in_flight > 0 and 0 < down_ratio < up_ratio (the band is the hysteresis)")

    def desired(self, current: int, low: int, high: int, load: Load, since_up_s: float, since_change_s: float) -> int:
        """The replica count to move to now (``current`` when nothing should change)."""
        if current < low or current > high:
            return min(max(current, low), high)
        per_replica = load.in_flight / max(current, 1)
        hot = per_replica > self.target_in_flight * self.up_ratio or load.queue_wait_ms > self.max_queue_wait_ms
        if hot and current < high and since_up_s >= self.up_cooldown_s:
            needed = math.ceil(load.in_flight / self.target_in_flight)
            return min(high, max(current + 1, needed))
        cool = current > low and since_change_s >= self.down_cooldown_s and not hot
        if cool and load.in_flight / (current - 1) < self.target_in_flight * self.down_ratio:
            return current - 1
        return current


@dataclass(frozen=True)
class Sample:
    """One replica's gauges and queue-wait totals at one moment (from its ``/metrics`` text)."""

    in_flight: float
    wait_sum: float
    wait_count: float

    @classmethod
    def parse(cls, text: str) -> Sample:
        in_flight = wait_sum = wait_count = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in IN_FLIGHT:
                    in_flight += sample.value
                elif sample.name == QUEUE_WAIT + "_sum":
                    wait_sum += sample.value
                elif sample.name == QUEUE_WAIT + "_count":
                    wait_count += sample.value
        return cls(in_flight, wait_sum, wait_count)


def load_between(samples: list[list[Sample]]) -> Load:
    """A ``Load`` from rounds of samples (one list per round, one sample per replica)."""
    if not samples:
        return Load(0.0)
    in_flight = sum(sum(s.in_flight for s in round_) for round_ in samples) / len(samples)
    first, last = samples[0], samples[-1]
    waited = sum(s.wait_sum for s in last) - sum(s.wait_sum for s in first)
    count = sum(s.wait_count for s in last) - sum(s.wait_count for s in first)
    return Load(in_flight, 1000.0 * max(waited, 0.0) / count if count > 0 else 0.0)  # replicas came or went
