"""Run ``oar serve`` as a child process and wait until it is ready (quickstart, tests, benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from oar._core.errors import OarError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class ServerProcess:
    """``with ServerProcess(["chnsenti-cls"]) as server: ModelClient(server.endpoint)...``

    REST and gRPC both get free ports unless given; ``grpc_port=0`` turns gRPC off. With ``tls_cert`` and
    ``tls_key`` the server speaks HTTPS and TLS gRPC (``endpoint`` is ``https://``, ``grpc_endpoint``
    ``grpcs://``).
    """

    def __init__(
        self,
        models: Sequence[str] = (),
        port: int | None = None,
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        grpc_port: int | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        self.host = host
        self.tls = bool(tls_cert and tls_key)
        tls_args = ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key)] if tls_cert and tls_key else []
        self.port = port or free_port(host)
        self.grpc_port = free_port(host) if grpc_port is None else grpc_port
        self.command = [
            sys.executable,
            "-m",
            "oar.cli.main",
            "serve",
            *models,
            "--host",
            host,
            "--port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
            *tls_args,
            *extra_args,
        ]
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"{'grpcs' if self.tls else 'grpc'}://{self.host}:{self.grpc_port}"

    @property
    def grpc_address(self) -> str:
        """``host:port``, as Triton's gRPC client takes it."""
        return f"{self.host}:{self.grpc_port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        # Output goes to a file, never a pipe nobody reads (which could block the server),
        # so that a failed start can say why.
        log = open(self.log_path, "w+b") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log.seek(0)
                tail = log.read()[-2000:].decode(errors="replace")
                raise OarError(f"server exited with code {self.process.returncode} before it was ready:\n{tail}")
            try:
                # Only "is it up yet": the callers that test TLS verify the certificate themselves.
                ready = httpx.get(f"{self.endpoint}/v2/health/ready", timeout=1.0, verify=not self.tls)
                if ready.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise OarError(f"server did not become ready within {timeout:.0f} s")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
