"""Real spot notices, end to end: recorded AWS, GCP and Azure metadata answers served on loopback by a real
HTTP server, polled by the scheduler's cloud source, and an operator's `oar jobs preempt`; each one ends in
SIGTERM → checkpoint → exit 75 → requeue → resume from that checkpoint, and the job finishes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from jobs_helpers import drive, write_job

import oar.jobs  # noqa: F401
from oar.hub import Hub
from oar.jobs.daemon import build
from oar.jobs.notices import CombinedNotices, HostCloudNotices, NoticeInbox
from oar.jobs.pools import Pool, Pools
from oar.jobs.progress import read_progress
from oar.jobs.scheduler import job_dir
from oar.jobs.service import submit
from oar.jobs.store import JobStore

AWS = "/latest/meta-data/spot/instance-action"
GCP = "/computeMetadata/v1/instance/preempted"
AZURE = "/metadata/scheduledevents?api-version=2020-07-01"
POOLS = Pools(
    pools={
        "on-demand": Pool(price_per_hour=0.10, min_nodes=1, max_nodes=1),
        "spot": Pool(price_per_hour=0.10, spot=True, spot_discount=0.7, notice_s=30, min_nodes=1, max_nodes=2),
    }
)


class _Metadata(BaseHTTPRequestHandler):
    """Answers as a node's metadata server does: nothing planned, until the test plans a reclaim."""

    answers: ClassVar[dict[str, tuple[int, str]]] = {}

    def do_PUT(self) -> None:  # IMDSv2 token
        self._answer(200, "token-abc" if self.headers.get("X-aws-ec2-metadata-token-ttl-seconds") else "")

    def do_GET(self) -> None:
        if self.path == AWS and self.headers.get("X-aws-ec2-metadata-token") != "token-abc":
            return self._answer(401, "")
        if self.path == GCP and self.headers.get("Metadata-Flavor") != "Google":
            return self._answer(403, "")
        if self.path == AZURE and self.headers.get("Metadata") != "true":
            return self._answer(400, "")
        return self._answer(*self.answers[self.path])

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _reclaim(path: str) -> tuple[int, str]:
    """The recorded answer of a planned spot reclaim, timed from now."""
    now = datetime.now(UTC)
    if path == AWS:
        moment = (now + timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 200, json.dumps({"action": "terminate", "time": moment})
    if path == GCP:
        return 200, "TRUE"
    event = {
        "EventId": "602d9444-d2cd-49c7-8624-8643e7171297",
        "EventStatus": "Scheduled",
        "EventType": "Preempt",
        "ResourceType": "VirtualMachine",
        "Resources": ["spot-vm-1"],
        "NotBefore": format_datetime(now + timedelta(seconds=30), usegmt=True),
        "Description": "",
        "EventSource": "Platform",
        "DurationInSeconds": -1,
    }
    return 200, json.dumps({"DocumentIncarnation": 2, "Events": [event]})


@pytest.fixture
def metadata_server():
    _Metadata.answers = {
        AWS: (404, "<?xml version='1.0'?><Error><Code>NotFound</Code></Error>"),
        GCP: (200, "FALSE"),
        AZURE: (200, json.dumps({"DocumentIncarnation": 1, "Events": []})),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_aws_gcp_azure_and_operator_notices_each_checkpoint_requeue_and_resume(tmp_path, metadata_server):
    os.environ["OAR_HOME"] = str(tmp_path)
    hub = Hub(tmp_path)
    job = submit(write_job(tmp_path, epochs=12, pool="spot"), hub, POOLS)  # long enough to be caught training
    clouds = [HostCloudNotices(name, POOLS, metadata_server, every_s=0.2) for name in ("aws", "gcp", "azure")]
    scheduler = build(hub, pools=POOLS, preemptions=CombinedNotices(*clouds, NoticeInbox(tmp_path, "local")))
    store = JobStore.open(hub)
    plan = [AWS, GCP, AZURE, "operator"]
    operator: list[subprocess.Popen] = []

    def reclaim_once_training() -> None:
        running = [a for a in store.attempts(job.id, states=("running",)) if not a.handle.get("stop")]
        if not plan or not running or len(store.attempts(job.id)) != 5 - len(plan):
            return
        if plan[0] == "operator":  # at once: the command itself takes seconds to start
            env = {**os.environ, "OAR_HOME": str(tmp_path)}
            command = [sys.executable, "-m", "oar.cli.main", "jobs", "preempt", job.id, "--notice", "30"]
            operator.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True))
            plan.pop(0)
            return
        progress = read_progress(job_dir(hub, job.id) / f"attempt-{running[0].number}" / "progress.json")
        if progress.get("step", -1) <= progress.get("start_step", 0):
            return  # not training yet: its SIGTERM handler may not be installed
        what = plan.pop(0)
        _Metadata.answers[what] = _reclaim(what)

    drive(scheduler, lambda: store.get(job.id).done, 540, reclaim_once_training)
    job = store.get(job.id)
    assert job.state == "succeeded", job.reason
    assert operator, [(a.number, a.outcome, a.pool, a.nodes) for a in store.attempts(job.id)]
    assert operator[0].wait(timeout=30) == 0 and "notice sent for " in operator[0].stdout.read()
    attempts = store.attempts(job.id)
    assert [a.outcome for a in attempts] == ["preempted"] * 4 + ["succeeded"]
    for before in attempts[:3]:  # the clouds' notices came while it trained: a checkpoint at the last step
        assert before.exit_code == 75 and before.checkpoint_step == before.last_step > before.start_step
    for before, after in itertools.pairwise(attempts[:3]):
        assert after.start_step == before.checkpoint_step  # resumed from the checkpoint the notice made
    # the operator's notice may come while the attempt still starts (SIGTERM before training: 143, nothing new)
    operator_stop = attempts[3]
    assert operator_stop.exit_code in (75, 143)
    resumed_from = operator_stop.checkpoint_step if operator_stop.exit_code == 75 else attempts[2].checkpoint_step
    assert attempts[4].start_step == resumed_from
    assert attempts[-1].last_step == 192
    reasons = " | ".join(e.reason for e in job.events)
    for said in ("aws spot interruption notice", "gcp spot interruption notice", "azure spot interruption notice"):
        assert said in reasons
    assert f"preempted by operator ({job.id})" in reasons and "checkpointed and exited 75 at step" in reasons
    assert [e.state for e in job.events].count("requeued") == 4
