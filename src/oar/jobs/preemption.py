"""Where preemption notices come from: a simulator for tests and benchmarks, or the cloud's own notice.

A source is polled by the scheduler with the nodes it knows and answers ``Notice``s: node N goes away
in ``notice_s`` seconds (0: it is already gone, a hard loss with no warning). Real clouds announce it
on each node's metadata endpoint; ``oar.jobs.cloud`` parses those answers (AWS, GCP, Azure).

>>> source = PoissonPreemptions(pools, seed=7, speedup=3600)  # an hour of spot life per second
>>> source.poll(inventory.nodes())
[Notice(node_id='spot-3fa2c1', notice_s=30.0, reason='simulated spot preemption')]
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from oar.jobs.executors.base import NodeView
from oar.jobs.pools import Pools


@dataclass(frozen=True)
class Notice:
    node_id: str
    notice_s: float  # seconds until the node is lost; 0 means lost now, no checkpoint
    reason: str


class PreemptionSource(Protocol):
    def poll(self, nodes: list[NodeView]) -> list[Notice]: ...


class NoPreemptions:
    def poll(self, nodes: list[NodeView]) -> list[Notice]:
        return []


class PoissonPreemptions:
    """Each spot node is preempted at its pool's ``preemptions_per_hour`` (a Poisson process).

    ``speedup`` compresses time (3600: one simulated hour per second); ``hard_fraction`` of the
    preemptions come with no notice at all; the notice window is the pool's ``notice_s`` divided
    by ``speedup`` (but at least ``min_notice_s``, the time a checkpoint needs on this machine).
    """

    def __init__(
        self,
        pools: Pools,
        seed: int = 0,
        speedup: float = 1.0,
        hard_fraction: float = 0.0,
        min_notice_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pools, self.speedup, self.hard_fraction, self.min_notice_s = pools, speedup, hard_fraction, min_notice_s
        self.random = random.Random(seed)
        self.clock = clock
        self._last = clock()
        self.sent: list[Notice] = []

    def poll(self, nodes: list[NodeView]) -> list[Notice]:
        now = self.clock()
        elapsed, self._last = (now - self._last) * self.speedup, now
        notices = []
        for node in sorted(nodes, key=lambda n: n.id):
            pool = self.pools.pools.get(node.pool)
            if pool is None or not pool.spot or pool.preemptions_per_hour <= 0:
                continue
            if self.random.random() < 1.0 - math.exp(-pool.preemptions_per_hour * elapsed / 3600.0):
                hard = self.random.random() < self.hard_fraction
                notice_s = 0.0 if hard else max(self.min_notice_s, pool.notice_s / self.speedup)
                notices.append(
                    Notice(node.id, notice_s, "simulated spot preemption" + (" (no notice)" if hard else ""))
                )
        self.sent.extend(notices)
        return notices


class ManualPreemptions:
    """Notices sent from code (a test, an operator command): ``preempt(node_id, notice_s)``."""

    def __init__(self) -> None:
        self._pending: list[Notice] = []
        self._lock = threading.Lock()

    def preempt(self, node_id: str, notice_s: float, reason: str = "preempted by operator") -> None:
        with self._lock:
            self._pending.append(Notice(node_id, notice_s, reason))

    def poll(self, nodes: list[NodeView]) -> list[Notice]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending
