"""Preemption sources: the Poisson simulator, and the cloud notices parsed from recorded answers.

The recorded answers are the documented shapes of each metadata endpoint (AWS instance-action,
GCP instance/preempted, Azure scheduledevents); ``MetadataNotices`` is tested against a real HTTP
server on loopback that answers them.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from oar.jobs.cloud import MetadataNotices, Reply, aws_notice, azure_notice, gcp_notice
from oar.jobs.executors.base import NodeView
from oar.jobs.pools import Pool, Pools
from oar.jobs.preemption import PoissonPreemptions

pytestmark = pytest.mark.timeout(60)
NOW = datetime(2026, 12, 3, 15, 0, 0, tzinfo=UTC)

AWS_PLANNED = '{"action": "terminate", "time": "2026-12-03T15:02:00Z"}'
AWS_NONE = (404, "<?xml version='1.0'?><Error><Code>NotFound</Code></Error>")
AZURE_PREEMPT = json.dumps(
    {
        "DocumentIncarnation": 2,
        "Events": [
            {
                "EventId": "A123BC45-1234-5678-AB90-ABCDEF123456",
                "EventStatus": "Scheduled",
                "EventType": "Preempt",
                "ResourceType": "VirtualMachine",
                "Resources": ["spot-vm-1"],
                "NotBefore": "Thu, 03 Dec 2026 15:00:30 GMT",
                "Description": "",
                "EventSource": "Platform",
                "DurationInSeconds": -1,
            }
        ],
    }
)
AZURE_REBOOT_ONLY = json.dumps(
    {
        "DocumentIncarnation": 1,
        "Events": [
            {
                "EventId": "x",
                "EventType": "Reboot",
                "Resources": ["spot-vm-1"],
                "NotBefore": "Thu, 03 Dec 2026 16:00:00 GMT",
            }
        ],
    }
)


def test_aws_instance_action_gives_the_seconds_left_and_404_means_no_interruption():
    assert aws_notice(Reply(200, AWS_PLANNED), NOW) == 120.0
    assert aws_notice(Reply(*AWS_NONE), NOW) is None
    with pytest.raises(ValueError, match="answered 500"):
        aws_notice(Reply(500, ""), NOW)


def test_gcp_preempted_true_means_thirty_seconds():
    assert gcp_notice(Reply(200, "TRUE"), NOW) == 30.0
    assert gcp_notice(Reply(200, "FALSE"), NOW) is None


def test_azure_only_preempt_events_for_this_vm_count():
    assert azure_notice(Reply(200, AZURE_PREEMPT), NOW) == 30.0
    assert azure_notice(Reply(200, AZURE_PREEMPT), NOW, resource="other-vm") is None
    assert azure_notice(Reply(200, AZURE_REBOOT_ONLY), NOW) is None
    assert azure_notice(Reply(200, '{"DocumentIncarnation": 0, "Events": []}'), NOW) is None


class _Metadata(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, str]]] = {}
    seen_headers: ClassVar[list[dict[str, str]]] = []

    def do_PUT(self) -> None:  # AWS IMDSv2 token
        self._answer(200, "token-123")

    def do_GET(self) -> None:
        self.seen_headers.append(dict(self.headers))
        self._answer(*self.answers.get(self.path, (404, "")))

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metadata_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_metadata_notices_poll_a_real_endpoint_and_report_once(metadata_server):
    _server, url = metadata_server
    _Metadata.answers = {"/computeMetadata/v1/instance/preempted": (200, "FALSE")}
    source = MetadataNotices("gcp", "node-a", url)
    assert source.poll([]) == []
    _Metadata.answers = {"/computeMetadata/v1/instance/preempted": (200, "TRUE")}
    notices = source.poll([])
    assert [(n.node_id, n.notice_s) for n in notices] == [("node-a", 30.0)]
    assert source.poll([]) == []  # one notice per node
    assert _Metadata.seen_headers[-1]["Metadata-Flavor"] == "Google"


def test_aws_source_sends_the_imdsv2_token(metadata_server):
    _, url = metadata_server
    _Metadata.answers = {"/latest/meta-data/spot/instance-action": AWS_NONE}
    assert MetadataNotices("aws", "node-b", url).poll([]) == []
    assert _Metadata.seen_headers[-1]["X-aws-ec2-metadata-token"] == "token-123"


def test_the_simulator_preempts_spot_nodes_at_the_configured_rate_and_never_on_demand():
    pools = Pools(
        pools={
            "on-demand": Pool(preemptions_per_hour=0.0),
            "spot": Pool(spot=True, spot_discount=0.6, notice_s=120, preemptions_per_hour=2.0),
        }
    )
    clock = [0.0]
    source = PoissonPreemptions(pools, seed=3, speedup=1.0, clock=lambda: clock[0])
    nodes = [NodeView("spot-a", "spot", 1), NodeView("od-a", "on-demand", 1)]
    count = 0
    for _ in range(2000):  # 2000 polls of 36 s each: 20 hours of one spot node at 2 an hour
        clock[0] += 36.0
        notices = source.poll(nodes)
        assert all(n.node_id == "spot-a" and n.notice_s == 120.0 for n in notices)
        count += len(notices)
    assert 30 <= count <= 50  # Poisson(40): far outside this is a wrong rate


def test_the_simulator_is_reproducible_for_a_seed_and_can_send_no_notice():
    pools = Pools(pools={"on-demand": Pool(), "spot": Pool(spot=True, notice_s=30, preemptions_per_hour=50.0)})

    def run(seed: int) -> list[tuple[int, float]]:
        clock = [0.0]
        source = PoissonPreemptions(pools, seed=seed, speedup=60.0, hard_fraction=0.5, clock=lambda: clock[0])
        out = []
        for tick in range(200):
            clock[0] += 1.0
            out += [(tick, n.notice_s) for n in source.poll([NodeView("s", "spot", 1)])]
        return out

    assert run(1) == run(1) and run(1) != run(2)
    assert {notice for _, notice in run(1)} == {0.0, 0.5}  # hard losses and 30 s / 60 notices


def test_the_cluster_launcher_config_has_one_autoscaled_node_type_per_pool():
    from oar.jobs.launcher import launcher_config

    pools = Pools(
        pools={
            "on-demand": Pool(node_type="m7i.large", node_cpus=2, min_nodes=1, max_nodes=4),
            "spot": Pool(node_type="m7i.large", node_cpus=2, spot=True, spot_discount=0.6, min_nodes=0, max_nodes=8),
        }
    )
    wheel = Path("wheels/oar_platform-0.1.0-py3-none-any.whl")
    config = launcher_config(pools, "aws", "eu-west-1", wheel=wheel)
    spot = config["available_node_types"]["spot"]
    assert spot["resources"] == {"CPU": 2, "pool:spot": 1} and (spot["min_workers"], spot["max_workers"]) == (0, 8)
    assert spot["node_config"]["InstanceMarketOptions"] == {"MarketType": "spot"}
    assert "InstanceMarketOptions" not in config["available_node_types"]["on-demand"]["node_config"]
    assert config["max_workers"] == 12 and config["provider"] == {"type": "aws", "region": "eu-west-1"}
    gcp = launcher_config(pools, "gcp", "europe-west4", wheel=wheel, project_id="p")["available_node_types"]["spot"]
    gcp = gcp["node_config"]
    assert gcp["scheduling"]["provisioningModel"] == "SPOT"
