"""Preemption notices from the clouds' metadata endpoints (AWS, GCP, Azure), as a ``PreemptionSource``.

Each cloud announces the loss of a spot node on an endpoint only that node can reach:

- **AWS** (EC2 Spot, two minutes' notice): IMDSv2 token from ``PUT /latest/api/token``, then
  ``GET /latest/meta-data/spot/instance-action``: 404 while nothing is planned, else
  ``{"action": "terminate" | "stop" | "hibernate", "time": "2026-12-03T15:02:00Z"}``.
- **GCP** (Spot / preemptible VMs, 30 s): ``GET /computeMetadata/v1/instance/preempted`` with
  ``Metadata-Flavor: Google`` answers ``TRUE`` or ``FALSE``.
- **Azure** (Spot VMs, at least 30 s): ``GET /metadata/scheduledevents?api-version=2020-07-01`` with
  ``Metadata: true`` answers ``{"DocumentIncarnation": n, "Events": [...]}``; a spot eviction is an
  event with ``"EventType": "Preempt"`` whose ``NotBefore`` (RFC 1123) is the time of the loss.

``MetadataNotices`` polls one of them (a few seconds apart, as AWS asks) on the node it runs on and
reports that node; run one per spot node (docs/jobs.md: a small Ray actor pinned to each node).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from oar.jobs.executors.base import NodeView
from oar.jobs.preemption import Notice

TIMEOUT_S = 2.0  # the metadata server is link-local: anything slower is no answer


@dataclass(frozen=True)
class Reply:
    status: int
    text: str


def aws_notice(reply: Reply, now: datetime) -> float | None:
    """Seconds until the instance is taken, or None when no interruption is planned."""
    if reply.status == 404:
        return None
    if reply.status != 200:
        raise ValueError(f"AWS instance-action answered {reply.status}")
    body = json.loads(reply.text)
    if body.get("action") not in ("terminate", "stop", "hibernate"):
        return None
    moment = datetime.fromisoformat(body["time"].replace("Z", "+00:00"))
    return max(0.0, (moment - now).total_seconds()) if body["action"] != "hibernate" else 0.0


GCP_NOTICE_S = 30.0  # Compute Engine sends ACPI soft-off and waits 30 s


def gcp_notice(reply: Reply, now: datetime) -> float | None:
    if reply.status != 200:
        raise ValueError(f"GCP instance/preempted answered {reply.status}")
    return GCP_NOTICE_S if reply.text.strip().upper() == "TRUE" else None


def azure_notice(reply: Reply, now: datetime, resource: str | None = None) -> float | None:
    """The earliest Preempt event (for ``resource``, the VM's name, if given)."""
    if reply.status != 200:
        raise ValueError(f"Azure scheduledevents answered {reply.status}")
    soonest = None
    for event in json.loads(reply.text).get("Events", []):
        if event.get("EventType") != "Preempt":
            continue
        if resource is not None and resource not in event.get("Resources", []):
            continue
        not_before = event.get("NotBefore")
        seconds = max(0.0, (parsedate_to_datetime(not_before) - now).total_seconds()) if not_before else 0.0
        soonest = seconds if soonest is None else min(soonest, seconds)
    return soonest


@dataclass(frozen=True)
class Provider:
    name: str
    parse: Callable[[Reply, datetime], float | None]
    path: str
    headers: dict[str, str]


PROVIDERS = {
    "aws": Provider("aws", aws_notice, "/latest/meta-data/spot/instance-action", {}),
    "gcp": Provider("gcp", gcp_notice, "/computeMetadata/v1/instance/preempted", {"Metadata-Flavor": "Google"}),
    "azure": Provider("azure", azure_notice, "/metadata/scheduledevents?api-version=2020-07-01", {"Metadata": "true"}),
}
ENDPOINTS = {
    "aws": "http://169.254.169.254",
    "gcp": "http://metadata.google.internal",
    "azure": "http://169.254.169.254",
}


class MetadataNotices:
    """A ``PreemptionSource`` for the node it runs on, from its cloud's metadata endpoint."""

    def __init__(self, provider: str, node_id: str, endpoint: str | None = None) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown cloud '{provider}'; known: {', '.join(PROVIDERS)}")
        self.provider, self.node_id = PROVIDERS[provider], node_id
        self.client = httpx.Client(base_url=endpoint or ENDPOINTS[provider], timeout=TIMEOUT_S)
        self._sent = False

    def _headers(self) -> dict[str, str]:
        if self.provider.name != "aws":
            return self.provider.headers
        token = self.client.put("/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"})
        token.raise_for_status()
        return {"X-aws-ec2-metadata-token": token.text}

    def poll(self, nodes: list[NodeView]) -> list[Notice]:
        if self._sent:
            return []
        response = self.client.get(self.provider.path, headers=self._headers())
        seconds = self.provider.parse(Reply(response.status_code, response.text), datetime.now(UTC))
        if seconds is None:
            return []
        self._sent = True
        return [Notice(self.node_id, seconds, f"{self.provider.name} spot interruption notice")]
