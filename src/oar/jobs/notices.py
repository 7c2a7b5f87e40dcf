"""Which preemption source a scheduler listens to: ``simulate``, ``cloud`` or ``manual`` (plus the operator's inbox).

- ``simulate``: ``PoissonPreemptions`` at the pools' rates, time sped up, with a notice floor (a notice
  shorter than an attempt needs to write its checkpoint turns every preemption into a hard loss).
- ``cloud``: the cloud's own notice from its metadata endpoint. On the local executor every node is a
  slot of this machine, so the machine's notice concerns all of its spot nodes (``HostCloudNotices``);
  on Ray a small actor on each spot node polls that node's endpoint and forwards what it hears
  (``oar.jobs.ray_notices``).
- ``manual``: only what an operator sends.

Whatever the mode, the scheduler also reads the operator's inbox: ``oar jobs preempt NODE_OR_JOB``
drops a notice file in ``OAR_HOME/jobs/notices/<cluster>/`` and the next tick takes it (and deletes it),
so a manual preemption works on a running scheduler without restarting it.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path

from oar._core.errors import InvalidInputError
from oar.jobs.cloud import PROVIDERS, MetadataNotices
from oar.jobs.executors.base import NodeView
from oar.jobs.pools import Pools
from oar.jobs.preemption import Notice, PoissonPreemptions, PreemptionSource

log = logging.getLogger("oar.jobs")
MODES = ("simulate", "cloud", "manual")
MIN_NOTICE_S = 10.0  # the simulator's floor: time for SIGTERM → checkpoint → exit 75 on a slow node


def inbox_dir(home: Path, cluster: str) -> Path:
    slug = "".join(c if c.isalnum() else "_" for c in cluster)
    return home / "jobs" / "notices" / slug


def send_notice(home: Path, cluster: str, node_id: str, notice_s: float, reason: str) -> Path:
    """Leave a notice for the scheduler of ``cluster`` (written whole, then renamed into place)."""
    folder = inbox_dir(home, cluster)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
    staging = folder / f".{name}.tmp"
    staging.write_text(json.dumps({"node_id": node_id, "notice_s": notice_s, "reason": reason}))
    os.replace(staging, folder / name)
    return folder / name


class NoticeInbox:
    """Notices left by ``send_notice``, oldest first; each is read once and then deleted."""

    def __init__(self, home: Path, cluster: str) -> None:
        self.folder = inbox_dir(home, cluster)

    def poll(self, nodes: list[NodeView]) -> list[Notice]:
        if not self.folder.is_dir():
            return []
        notices = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                body = json.loads(path.read_text())
                notice = Notice(str(body["node_id"]), float(body["notice_s"]), str(body["reason"]))
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("ignoring unreadable notice file %s", path)
                notice = None
            path.unlink(missing_ok=True)
            if notice is not None:
                notices.append(notice)
        return notices


class HostCloudNotices:
    """The cloud notice of the machine the local executor runs on, for every spot node (slot) of it."""

    def __init__(self, provider: str, pools: Pools, endpoint: str | None = None, every_s: float = 2.0) -> None:
        self.source = MetadataNotices(provider, "this machine", endpoint)
        self.pools, self.every_s, self._last = pools, every_s, float("-inf")

    def poll(self, nodes: list[NodeView]) -> list[Notice]:
        if time.monotonic() - self._last < self.every_s:  # the clouds ask for a poll every few seconds, no more
            return []
        self._last = time.monotonic()
        try:
            heard = self.source.poll(nodes)
        except Exception as exc:  # an unreachable endpoint must not stop the scheduler
            log.warning("metadata endpoint: %s", exc)
            return []
        spot = [n for n in nodes if n.pool in self.pools.pools and self.pools.pools[n.pool].spot]
        return [Notice(node.id, notice.notice_s, notice.reason) for notice in heard for node in spot]


class CombinedNotices:
    """Every source's notices, in order (a node noticed twice is handled once by the scheduler)."""

    def __init__(self, *sources: PreemptionSource) -> None:
        self.sources = sources

    def poll(self, nodes: list[NodeView]) -> list[Notice]:
        return [notice for source in self.sources for notice in source.poll(nodes)]


def preemption_source(
    mode: str,
    pools: Pools,
    home: Path,
    cluster: str,
    *,
    speedup: float | None = None,
    seed: int = 0,
    min_notice_s: float = MIN_NOTICE_S,
    provider: str | None = None,
    endpoint: str | None = None,
) -> PreemptionSource:
    """The source for ``mode``, always combined with the operator's inbox."""
    inbox = NoticeInbox(home, cluster)
    if mode == "manual":
        return inbox
    if mode == "simulate":
        if not speedup or speedup <= 0:
            raise InvalidInputError("--preemptions simulate needs --simulate-preemptions SPEEDUP (e.g. 3600)")
        simulated = PoissonPreemptions(pools, seed=seed, speedup=speedup, min_notice_s=min_notice_s)
        return CombinedNotices(simulated, inbox)
    if mode == "cloud":
        if provider not in PROVIDERS:
            raise InvalidInputError(f"--preemptions cloud needs --cloud, one of: {', '.join(PROVIDERS)}")
        if cluster == "local":
            return CombinedNotices(HostCloudNotices(provider, pools, endpoint), inbox)
        from oar.jobs.ray_notices import RayCloudNotices

        return CombinedNotices(RayCloudNotices(provider, pools, endpoint), inbox)
    raise InvalidInputError(f"--preemptions: expected one of {', '.join(MODES)}, got '{mode}'")
