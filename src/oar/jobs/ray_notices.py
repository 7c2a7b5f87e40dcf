"""Cloud notices on Ray: a small actor on each spot node polls that node's metadata endpoint.

A notice is only visible from the node it concerns, so the scheduler cannot poll it itself: for each
alive spot node it starts (once) a detached actor ``oar-notices-<node>`` pinned to that node with no CPU,
which polls the endpoint every few seconds in a thread and keeps what it heard. ``RayCloudNotices``
(the scheduler's ``PreemptionSource``) collects those notices every tick without waiting on a slow
actor; a restarted scheduler finds the actors again by name.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from oar.jobs.executors.base import NodeView
from oar.jobs.pools import Pools
from oar.jobs.preemption import Notice

NAMESPACE = "oar-jobs"
POLL_EVERY_S = 2.0
_COLLECT_TIMEOUT_S = 0.5
log = logging.getLogger("oar.jobs")


@ray.remote(num_cpus=0, max_restarts=0)
class NoticeForwarder:
    """Polls this node's metadata endpoint and keeps the notices until the scheduler collects them."""

    def __init__(self, provider: str, node_id: str, endpoint: str | None, every_s: float) -> None:
        from oar.jobs.cloud import MetadataNotices

        self.source = MetadataNotices(provider, node_id, endpoint)
        self.pending: list[tuple[str, float, str, float]] = []  # node, seconds left, reason, when heard
        self.errors = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._loop, args=(every_s,), daemon=True).start()

    def _loop(self, every_s: float) -> None:
        while True:
            try:
                heard = self.source.poll([])
            except Exception:  # the endpoint did not answer: try again next round
                self.errors += 1
                heard = []
            with self.lock:
                self.pending += [(n.node_id, n.notice_s, n.reason, time.time()) for n in heard]
            time.sleep(every_s)

    def collect(self) -> list[tuple[str, float, str, float]]:
        with self.lock:
            pending, self.pending = self.pending, []
        return pending


class RayCloudNotices:
    """A ``PreemptionSource``: one ``NoticeForwarder`` per spot node, polled every tick."""

    def __init__(self, provider: str, pools: Pools, endpoint: str | None = None, every_s: float = POLL_EVERY_S) -> None:
        self.provider, self.pools, self.endpoint, self.every_s = provider, pools, endpoint, every_s
        self.forwarders: dict[str, Any] = {}
        self.inflight: dict[Any, str] = {}  # collect() calls not answered yet: waited on again, never dropped

    def forwarder(self, node_id: str) -> Any:
        if node_id not in self.forwarders:
            self.forwarders[node_id] = NoticeForwarder.options(
                name=f"oar-notices-{node_id}",
                namespace=NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(self.provider, node_id, self.endpoint, self.every_s)
        return self.forwarders[node_id]

    def poll(self, nodes: list[NodeView]) -> list[Notice]:
        spot = [n.id for n in nodes if n.pool in self.pools.pools and self.pools.pools[n.pool].spot]
        for gone in set(self.forwarders) - set(spot):
            del self.forwarders[gone]  # its node is gone (or noticed): the actor went with it
        asked = set(self.inflight.values())
        self.inflight |= {self.forwarder(node).collect.remote(): node for node in spot if node not in asked}
        if not self.inflight:
            return []
        ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=_COLLECT_TIMEOUT_S)
        notices = []
        for ref in ready:
            node = self.inflight.pop(ref)
            try:
                heard = ray.get(ref)
            except Exception as exc:  # the node died under its actor: the inventory will say so
                log.warning("notice forwarder on %s: %s", node, exc)
                continue
            for node_id, seconds, reason, at in heard:
                notices.append(Notice(node_id, max(0.0, seconds - (time.time() - at)), reason))
        return notices
