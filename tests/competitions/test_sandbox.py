"""Model packages in the sandbox: a real package scored with its latency, and hostile programs run the way
a package runs (the same sandbox, the same user, limits and namespaces) that try to read the hidden
labels, open a socket, write outside their folder, fork-bomb or sleep forever: each gets its own error,
and the platform, the labels and the next submission are unaffected."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from oar._core.errors import InvalidInputError
from oar.competitions import hidden, sandbox
from oar.competitions.config import parse_spec
from oar.competitions.service import Competitions

from .conftest import spec_dict, wait_scored

pytestmark = pytest.mark.skipif(sandbox.available() is not None, reason=str(sandbox.available()))

HOSTILE = {
    "labels": "print(open(sys.argv[1]).read())",
    "socket": "import socket; socket.create_connection(('127.0.0.1', 22), timeout=2)",
    "outside": "open('/tmp/oar-sandbox-escape', 'w').write('x')",
    "fork-bomb": "import os\nwhile True:\n    os.fork()",
    "sleep": "import time; time.sleep(10000)",
}


@pytest.fixture(scope="module")
def competition(hub):
    return Competitions(hub).create(parse_spec(spec_dict(name="sandbox-cup"), "t"), "admin")


@pytest.mark.parametrize("attack", list(HOSTILE))
def test_a_hostile_program_gets_its_own_error(competition, home, attack):
    labels = hidden.competition_dir(home, competition.name) / hidden.HIDDEN / hidden.LABELS
    before = labels.read_bytes()
    box = sandbox.Box()
    try:
        command = [sys.executable, "-c", "import sys\n" + HOSTILE[attack], str(labels)]
        outcome = sandbox.run(box, command, sandbox.Limits(wall_s=4, memory_mb=512))
    finally:
        box.close()
    expected = {
        "labels": "Errno",  # not there inside (a home under /tmp), or not readable by the sandbox's user
        "socket": "Network is unreachable",
        "outside": "Permission denied",
        "fork-bomb": "Resource temporarily unavailable",
    }
    if attack == "sleep":
        assert outcome.timed_out and outcome.exit_code is None and outcome.seconds < 10
    else:
        assert outcome.exit_code not in (0, None) and expected[attack] in outcome.stderr_tail
        assert "labels" not in outcome.stderr_tail.replace(str(labels), "")
    assert labels.read_bytes() == before
    assert not os.path.exists("/tmp/oar-sandbox-escape")
    left = subprocess.run(["pgrep", "-u", "nobody", "-f", "oar-box|time.sleep"], capture_output=True, text=True)
    assert left.stdout.strip() == ""  # nothing it started outlives it


@pytest.mark.slow
def test_a_package_is_scored_with_its_latency_and_a_failing_one_costs_no_quota(hub, home, digits_package):
    hub.register_model(digits_package, "digits-lr", "erin")
    core = Competitions(hub)
    competition = core.store.get("sandbox-cup")
    scored = wait_scored(core, core.submit_package(competition, "erin", "digits-lr").id)
    assert scored.status == "scored", scored.error
    assert scored.public_score > 0.8 and scored.private_score > 0.8
    assert {"latency_p50_ms", "latency_p99_ms", "throughput_rows_s"} <= set(scored.details)
    assert 0 < scored.details["latency_p50_ms"] <= scored.details["latency_p99_ms"]
    quota = core.quota(competition, "erin")
    tight = Competitions(hub).create(
        parse_spec(spec_dict(name="tight-cup", sandbox={"time_s": 30, "memory_mb": 64, "cpus": 1}), "t"), "admin"
    )
    failed = wait_scored(core, core.submit_package(tight, "erin", "digits-lr").id)
    assert failed.status == "failed" and failed.error.startswith("the package failed in the sandbox")
    assert core.quota(tight, "erin")["total_left"] == tight.spec["limits"]["total"]
    assert core.quota(competition, "erin") == quota
    text_cup = core.create(parse_spec(spec_dict(name="text-cup", dataset={"name": "chnsenti"}, test_rows=20), "t"), "a")
    with pytest.raises(InvalidInputError, match="is a image-classification package; this competition is text-class"):
        core.submit_package(text_cup, "erin", "digits-lr")
    assert core.submissions(text_cup) == []
