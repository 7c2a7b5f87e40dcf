"""Fixtures for the runtime tests: real ``oar serve`` subprocesses, given time to start on a busy machine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from oar.serve.process import ServerProcess

START_TIMEOUT_S = 240.0  # loading several ONNX sessions on two shared cores can take a minute or more


@contextmanager
def serving(models: Sequence[str], extra_args: Sequence[str] = ()) -> Iterator[ServerProcess]:
    server = ServerProcess(models, extra_args=extra_args).start(START_TIMEOUT_S)
    try:
        yield server
    finally:
        server.stop()
