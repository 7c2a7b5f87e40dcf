"""``oar serve``: the Open Inference Protocol v2 over REST and gRPC for registered (or packaged) models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from oar._core.errors import InvalidInputError
from oar.serve import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_PORT,
    BatchingConfig,
    SecurityConfig,
    ServeOptions,
    VersionPolicy,
    build_dataplane,
)
from oar.serve import serve as run_server
from oar.serve.http2_limits import Http2Limits
from oar.serve.rest import DEFAULT_MAX_BODY_BYTES
from oar.serve.server import check_tls

console = Console(stderr=True)


def serve(
    models: Annotated[list[str] | None, typer.Argument(help="NAME or NAME:VERSION; default: every model")] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="serve packages from DIR/<name>/<version>/ instead of the hub")
    ] = None,
    host: str = typer.Option(DEFAULT_HOST, help="bind address; loopback by default"),
    port: int = typer.Option(DEFAULT_PORT, help="REST port"),
    grpc_port: int = typer.Option(DEFAULT_GRPC_PORT, help="gRPC port (0 = no gRPC)"),
    workers: int = typer.Option(1, min=1, help="processes sharing the ports (SO_REUSEPORT); one per core"),
    version_policy: str = typer.Option("latest:1", help="latest[:N] | all | specific:V[,V]"),
    max_batch_size: int = typer.Option(64, min=1, help="most items per model call (and per request)"),
    max_queue_delay_us: int = typer.Option(0, min=0, help="wait for fuller batches (0 = adaptive, no wait)"),
    preferred_batch_sizes: str = typer.Option("", help="comma-separated sizes that end the queue delay early"),
    max_queue_size: int = typer.Option(2048, min=1, help="queued requests per model; beyond it: 503"),
    timeout_us: int = typer.Option(0, min=0, help="default queue timeout per request (0 = none)"),
    instances: int = typer.Option(0, min=0, help="threads running batches per model (0 = on the event loop)"),
    max_body_bytes: int = typer.Option(DEFAULT_MAX_BODY_BYTES, help="larger request bodies get 413"),
    threads: int = typer.Option(0, help="ONNX Runtime intra-op threads per model (0 = its default)"),
    token: str = typer.Option(None, envvar="OAR_SERVE_TOKEN", help="require 'Authorization: Bearer TOKEN'"),
    admin_token: str = typer.Option(None, envvar="OAR_ADMIN_TOKEN", help="enable repository control with it"),
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS and TLS gRPC")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls-cert")] = None,
    access_log: bool = typer.Option(False, help="one JSON line per REST request (costs throughput)"),
    log_level: str = typer.Option("warning", help="debug | info | warning | error"),
    h2_max_streams: int = typer.Option(
        Http2Limits.max_concurrent_streams, min=1, help="gRPC: concurrent streams per connection"
    ),
    h2_max_header_list: int = typer.Option(
        Http2Limits.max_header_list_size, min=1024, help="gRPC: bytes of request headers (decoded)"
    ),
    h2_connection_window: int = typer.Option(
        Http2Limits.connection_window, min=65_535, help="gRPC: request bytes buffered or in calls per connection"
    ),
    h2_write_buffer: int = typer.Option(
        Http2Limits.write_high_water, min=16_384, help="gRPC: unread reply bytes before the peer stops being read"
    ),
    h2_handshake_timeout: float = typer.Option(
        Http2Limits.handshake_timeout, min=0.1, help="gRPC: seconds for the preface and first SETTINGS"
    ),
    h2_idle_timeout: float = typer.Option(
        Http2Limits.idle_timeout, min=0.1, help="gRPC: seconds without an open stream before GOAWAY"
    ),
) -> None:
    """Serve models until interrupted (SIGINT/SIGTERM drain in-flight requests first)."""
    try:
        preferred = tuple(int(s) for s in preferred_batch_sizes.split(",") if s.strip())
    except ValueError:
        raise InvalidInputError("--preferred-batch-sizes takes integers separated by commas") from None
    options = ServeOptions(
        models=tuple(models or ()),
        model_dir=model_dir,
        host=host,
        port=port,
        grpc_port=grpc_port,
        workers=workers,
        max_body_bytes=max_body_bytes,
        intra_op_threads=threads,
        batching=BatchingConfig(
            max_batch_size=max_batch_size,
            max_queue_delay_us=max_queue_delay_us,
            preferred_batch_sizes=preferred,
            max_queue_size=max_queue_size,
            timeout_us=timeout_us,
            instances=instances,
        ),
        version_policy=VersionPolicy.parse(version_policy),
        security=SecurityConfig(token=token, admin_token=admin_token),
        tls_cert=tls_cert,
        tls_key=tls_key,
        access_log=access_log,
        log_level=log_level,
        http2=Http2Limits(
            max_concurrent_streams=h2_max_streams,
            max_header_list_size=h2_max_header_list,
            connection_window=h2_connection_window,
            write_high_water=h2_write_buffer,
            handshake_timeout=h2_handshake_timeout,
            idle_timeout=h2_idle_timeout,
        ),
    )
    check_tls(options)  # before loading models: a bad certificate should not wait for them
    dataplane = None
    if workers == 1:
        dataplane, loaded = build_dataplane(options)
        for model in loaded:
            console.print(f"loaded [bold]{model.name}:{model.version}[/] ({model.manifest.task})")
    scheme = "https" if tls_cert else "http"
    grpc_note = f", gRPC on {host}:{grpc_port}" if grpc_port else ""
    console.print(f"serving on {scheme}://{host}:{port}/v2{grpc_note} ({workers} worker(s), pid {os.getpid()})")
    run_server(options, dataplane)
