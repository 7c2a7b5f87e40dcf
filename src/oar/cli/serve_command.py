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
    ConnectionLimits,
    SecurityConfig,
    ServeOptions,
    VersionPolicy,
    build_dataplane,
)
from oar.serve import serve as run_server
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
    max_queue_wait_us: int = typer.Option(
        50_000, min=0, help="shed (503) requests whose estimated queue wait is over this (0 = by count only)"
    ),
    timeout_us: int = typer.Option(0, min=0, help="default queue timeout per request (0 = none)"),
    instances: int = typer.Option(0, min=0, help="threads running batches per model (0 = on the event loop)"),
    max_body_bytes: int = typer.Option(DEFAULT_MAX_BODY_BYTES, help="larger request bodies get 413"),
    max_connections: int = typer.Option(4096, min=1, help="open connections per worker and port; more: refused"),
    keepalive_timeout: float = typer.Option(75.0, help="seconds an idle keep-alive connection stays open"),
    header_timeout: float = typer.Option(10.0, help="seconds for a request head (and a new connection's first)"),
    body_timeout: float = typer.Option(30.0, help="seconds for a request body, from its head"),
    send_timeout: float = typer.Option(30.0, help="seconds a peer may leave our replies unread"),
    linger_timeout: float = typer.Option(5.0, help="seconds to drain a client's input after an error reply"),
    max_header_bytes: int = typer.Option(16 * 1024, help="request line + headers; more: 431"),
    max_headers: int = typer.Option(100, help="header fields per request; more: 431"),
    max_url_bytes: int = typer.Option(8 * 1024, help="request target length; more: 414"),
    write_buffer_bytes: int = typer.Option(256 * 1024, help="unsent reply bytes before a connection stops reading"),
    threads: int = typer.Option(0, help="ONNX Runtime intra-op threads per model (0 = its default)"),
    token: str = typer.Option(None, envvar="OAR_SERVE_TOKEN", help="require 'Authorization: Bearer TOKEN'"),
    admin_token: str = typer.Option(None, envvar="OAR_ADMIN_TOKEN", help="enable repository control with it"),
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS and TLS gRPC")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls-cert")] = None,
    access_log: bool = typer.Option(False, help="one JSON line per REST request (costs throughput)"),
    log_level: str = typer.Option("warning", help="debug | info | warning | error"),
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
            max_queue_wait_us=max_queue_wait_us,
            timeout_us=timeout_us,
            instances=instances,
        ),
        version_policy=VersionPolicy.parse(version_policy),
        security=SecurityConfig(token=token, admin_token=admin_token),
        limits=ConnectionLimits(
            max_connections=max_connections,
            keepalive_timeout_s=keepalive_timeout,
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            send_timeout_s=send_timeout,
            linger_s=linger_timeout,
            max_header_bytes=max_header_bytes,
            max_headers=max_headers,
            max_url_bytes=max_url_bytes,
            write_buffer_bytes=write_buffer_bytes,
        ),
        tls_cert=tls_cert,
        tls_key=tls_key,
        access_log=access_log,
        log_level=log_level,
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
