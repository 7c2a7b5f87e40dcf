"""Fixtures for the serving tests: small real numeric models (exported with ``oar.jit.save``) and servers.

Servers are real ``oar serve`` subprocesses on free loopback ports; each is
shared by the tests of one module to keep the suite within its time budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ADMIN_TOKEN = "admin-secret"
INFERENCE_TOKEN = "infer-secret"
QUEUE_DELAY_S = 0.6  # the constrained server holds each batch this long: deterministic queue states


def _register_numeric(hub, tmp: Path, name: str, dtype: str, seed: int) -> None:
    """A tiny real network, ``x`` [n, 4] of ``dtype`` -> ``output`` [n, 3] FP32: exported, checked, registered."""
    import torch
    from torch import nn

    import oar
    from oar.export import InputSpec

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(seed)
            self.linear = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x.float())

    package = oar.jit.save(Head(), tmp / f"{name}-{seed}", input_spec=[InputSpec([None, 4], dtype, "x")], name=name)
    hub.register_model(package.path)


@pytest.fixture(scope="session")
def numeric_models(hub, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``num-fp32`` (versions 1 and 2), ``num-fp16`` and ``num-int64``: name -> datatype of ``x``."""
    tmp = tmp_path_factory.mktemp("numeric")
    _register_numeric(hub, tmp, "num-fp32", "float32", seed=1)
    _register_numeric(hub, tmp, "num-fp32", "float32", seed=2)
    _register_numeric(hub, tmp, "num-fp16", "float16", seed=3)
    _register_numeric(hub, tmp, "num-int64", "int64", seed=4)
    return {"num-fp32": "FP32", "num-fp16": "FP16", "num-int64": "INT64"}


@pytest.fixture(scope="session")
def full_server(trained, numeric_models) -> Iterator:
    """Every model, every version (policy ``all``), repository control on, 1 MiB body limit, batch limit 16."""
    from oar.serve.process import ServerProcess

    args = [
        "--version-policy",
        "all",
        "--admin-token",
        ADMIN_TOKEN,
        "--max-body-bytes",
        str(1 << 20),
        "--max-batch-size",
        "16",
    ]
    with ServerProcess(extra_args=args) as process:
        yield process


@pytest.fixture(scope="session")
def constrained(numeric_models) -> Iterator:
    """Token required, a queue of one request, and every batch held back QUEUE_DELAY_S."""
    from oar.serve.process import ServerProcess

    args = ["--token", INFERENCE_TOKEN, "--max-queue-size", "1", "--max-queue-delay-us", str(int(QUEUE_DELAY_S * 1e6))]
    with ServerProcess(["num-fp32:1"], extra_args=args) as process:
        yield process


def register_numeric(hub, tmp: Path, name: str, seed: int) -> None:
    _register_numeric(hub, tmp, name, "float32", seed)


def listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (one per worker with SO_REUSEPORT)."""
    wanted = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1] == wanted and line.split()[3] == "0A")


def wait_for_listeners(port: int, count: int, timeout: float = 120.0) -> None:
    """Block until ``count`` workers listen: a server is ready when its first worker is, not its last."""
    deadline = time.monotonic() + timeout
    while listeners(port) < count:
        assert time.monotonic() < deadline, f"fewer than {count} workers listen on port {port}"
        time.sleep(0.1)


def metric_samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of the samples called ``name`` in a ``/metrics`` body whose labels include ``labels``."""
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
