"""The load generator counts what it cannot deliver: a server that is not there fails every request."""

from __future__ import annotations

import time

import pytest

from oar.supervise import allocate_ports
from oar.supervise.loadgen import LoadGenerator


@pytest.mark.timeout(30)
@pytest.mark.parametrize("rate", [None, 100.0])
def test_requests_to_a_port_nobody_listens_on_are_all_failures(rate: float | None) -> None:
    (port,) = allocate_ports(1)
    with LoadGenerator("127.0.0.1", port, "/v2/models/m/infer", b"{}", connections=2, rate=rate) as load:
        time.sleep(0.5)
    assert load.result.ok == 0 and load.result.failed > 0
    assert sum(load.result.reasons.values()) == load.result.failed
