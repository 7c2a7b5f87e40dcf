"""Start a server: load models, then serve REST (``oar.serve.http``) and gRPC (``oar.serve.grpc_server``).

Both run on one event loop and feed the same batchers.

With ``workers > 1`` the parent only supervises: each worker is a fresh
process that loads its own models and binds the same ports with
``SO_REUSEPORT``, so the kernel spreads connections over all cores. The
workers keep their Prometheus metrics in a private directory of mmap files
the supervisor creates (and removes at the end), so ``/metrics`` on any
worker reports the whole server.
Shutdown is graceful: listeners close, in-flight requests finish (both
protocols), queued batches drain, then the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvloop
from prometheus_client.multiprocess import mark_process_dead

from oar._core.errors import OarError
from oar.hub import Hub
from oar.runtime.session import use_device
from oar.serve.config import BatchingConfig, ConnectionLimits, SecurityConfig, VersionPolicy
from oar.serve.dataplane import DataPlane
from oar.serve.grpc_app import create_grpc_server
from oar.serve.http import HttpServer
from oar.serve.http2_limits import Http2Limits
from oar.serve.metrics import MULTIPROCESS_ENV, ServerMetrics
from oar.serve.repository import DirectorySource, HubSource, LoadedModel, ModelRepository
from oar.serve.rest import DEFAULT_MAX_BODY_BYTES, RestApp

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8500
DEFAULT_GRPC_PORT = 8501


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``oar serve`` needs; picklable, so worker processes get a copy."""

    models: tuple[str, ...] = ()
    model_dir: Path | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    grpc_port: int = DEFAULT_GRPC_PORT  # 0 = no gRPC
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    intra_op_threads: int = 0
    device: str = "cpu"  # cpu | cuda | auto: where ONNX Runtime sessions run (``oar.runtime.session``)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    access_log: bool = False
    log_level: str = "warning"
    drain_seconds: float = 10.0
    http2: Http2Limits = field(default_factory=Http2Limits)  # the gRPC port's per-connection HTTP/2 limits


def build_dataplane(
    options: ServeOptions, hub: Hub | None = None, metrics: ServerMetrics | None = None
) -> tuple[DataPlane, list[LoadedModel]]:
    """Load the models ``options`` name (every model of the source when none are named)."""
    use_device(options.device)  # a CUDA request this machine cannot honour fails here, before any model loads
    source = DirectorySource(options.model_dir) if options.model_dir else HubSource(hub or Hub())
    repository = ModelRepository(
        source,
        metrics=metrics,
        batching=options.batching,
        policy=options.version_policy,
        intra_op_threads=options.intra_op_threads,
    )
    loaded = repository.load_initial(list(options.models))
    if not loaded:
        where = f"directory {options.model_dir}" if options.model_dir else "hub"
        raise OarError(f"no models to serve: the {where} is empty; run `oar quickstart` or register a model first")
    return DataPlane(repository, options.security), loaded


def build_app(
    model_specs: Sequence[str] = (),
    hub: Hub | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    intra_op_threads: int = 0,
) -> tuple[RestApp, list[LoadedModel]]:
    """The REST app alone (in-process use): ``NAME[:VERSION]`` models, all latest when none are given."""
    options = ServeOptions(models=tuple(model_specs), max_body_bytes=max_body_bytes, intra_op_threads=intra_op_threads)
    dataplane, loaded = build_dataplane(options, hub)
    return RestApp(dataplane, max_body_bytes), loaded


def serve(
    options: ServeOptions, dataplane: DataPlane | None = None, sockets: dict[str, socket.socket] | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; with ``options.workers > 1`` supervise that many worker processes.

    ``sockets`` (``"rest"``, ``"grpc"``): listening sockets bound beforehand, so ``oar serve`` can refuse
    a taken port before it loads any model and print the addresses it really serves on.
    """
    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_tls(options)
    if options.workers > 1:
        _supervise(options)
        return
    if dataplane is None:
        dataplane, _ = build_dataplane(options)
    uvloop.run(_serve_async(options, dataplane, reuse_port=False, sockets=sockets))


def _quiet_garbage_collector() -> None:
    """Move everything loaded so far out of the collector's reach and collect young objects less often.

    Requests allocate many short-lived objects; with the default thresholds a full collection walks
    the loaded models' object graphs every few thousand requests, which shows up as tail latency.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def _serve_async(
    options: ServeOptions, dataplane: DataPlane, reuse_port: bool, sockets: dict[str, socket.socket] | None = None
) -> None:
    """Serve until SIGINT/SIGTERM, then drain: stop accepting, finish in-flight requests, empty the queues."""
    _quiet_garbage_collector()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    grpc_server = None
    if options.grpc_port:
        grpc_server = create_grpc_server(
            dataplane, options.max_body_bytes, _ssl_context(options, alpn="h2"), options.http2, options.limits
        )
        grpc_sock = (sockets or {}).get("grpc") or (
            _reuse_port_socket(options.host, options.grpc_port) if reuse_port else None
        )
        await _bind(
            grpc_server.start(options.host, options.grpc_port, sock=grpc_sock), options.grpc_port, "--grpc-port"
        )
    app = RestApp(dataplane, options.max_body_bytes, options.access_log)
    http = HttpServer(app, _ssl_context(options), options.limits)
    sock = (sockets or {}).get("rest") or (_reuse_port_socket(options.host, options.port) if reuse_port else None)
    await _bind(http.start(options.host, options.port, sock=sock), options.port, "--port")
    await stop.wait()
    stopping = [http.shutdown(options.drain_seconds)]
    if grpc_server is not None:
        stopping.append(grpc_server.shutdown(options.drain_seconds))
    await asyncio.gather(*stopping)
    await dataplane.drain(options.drain_seconds)


def check_tls(options: ServeOptions) -> None:
    """Fail early, with one clear message, when ``--tls-cert``/``--tls-key`` are unpaired or unusable."""
    if bool(options.tls_cert) != bool(options.tls_key):
        raise OarError("--tls-cert and --tls-key go together (a PEM certificate and its key)")
    _ssl_context(options)


async def _bind(starting: Awaitable[None], port: int, flag: str) -> None:
    try:
        await starting
    except OSError as exc:
        raise OarError(f"cannot bind port {port} ({exc.strerror}); choose another {flag}") from None


def _ssl_context(options: ServeOptions, alpn: str | None = None) -> ssl.SSLContext | None:
    """The server's TLS context; gRPC clients insist on ALPN ``h2``."""
    if not (options.tls_cert and options.tls_key):
        return None
    for flag, path in (("--tls-cert", options.tls_cert), ("--tls-key", options.tls_key)):
        if not path.is_file():
            raise OarError(f"{flag} {path}: no such file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(options.tls_cert, options.tls_key)
    except OSError as exc:  # ssl.SSLError: not PEM, or a key that does not match the certificate
        raise OarError(f"cannot serve TLS with {options.tls_cert} and {options.tls_key}: {exc}") from None
    if alpn:
        context.set_alpn_protocols([alpn])
    return context


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _worker(options: ServeOptions, metrics_dir: str) -> None:
    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    dataplane, _ = build_dataplane(options, metrics=ServerMetrics(multiprocess_dir=metrics_dir))
    uvloop.run(_serve_async(options, dataplane, reuse_port=True))


def _supervise(options: ServeOptions) -> None:
    """Start ``workers`` processes sharing the ports; forward SIGINT/SIGTERM; exit when they have drained.

    The workers are spawned (fresh interpreters), so the metrics directory named in the environment
    here is there before they import prometheus_client, which is when it picks its multiprocess mode.
    """
    metrics_dir = tempfile.mkdtemp(prefix="oar-metrics-")  # private (0700), fresh: no stale counts
    previous = os.environ.get(MULTIPROCESS_ENV)
    os.environ[MULTIPROCESS_ENV] = metrics_dir
    try:
        _run_workers(options, metrics_dir)
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_ENV, None)
        else:
            os.environ[MULTIPROCESS_ENV] = previous
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(options: ServeOptions, metrics_dir: str) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(options, metrics_dir), name=f"oar-worker-{i}")
        for i in range(options.workers)
    ]
    for worker in workers:
        worker.start()

    def stop(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.is_alive() and worker.pid:
                worker.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    running = {worker.sentinel: worker for worker in workers}
    while running:
        for sentinel in multiprocessing.connection.wait(list(running)):
            worker = running.pop(sentinel)
            worker.join()
            if worker.pid:  # its live gauges (queue depth, in flight) leave the sums; its counters stay
                mark_process_dead(worker.pid, metrics_dir)
    failed = [w.name for w in workers if w.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        raise OarError(f"worker(s) {', '.join(failed)} exited with an error; see the log above")


def _str(path: Path | None) -> str | None:
    return str(path) if path else None
