"""``oar serve``: the Open Inference Protocol v2 over REST and gRPC for registered (or packaged) models."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from oar._core.errors import InvalidInputError, OarError
from oar._core.settings import oar_home
from oar.cli.served import serving_record
from oar.hub import Hub
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
from oar.serve.http2_limits import Http2Limits
from oar.serve.repository import HubSource, parse_model_spec
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
    max_buffered_body_bytes: int = typer.Option(
        64 * 1024 * 1024,
        min=64 * 1024,
        help="REST body bytes all connections of a worker hold at once (at least 2x --max-body-bytes); "
        "past it the largest unfinished bodies get 503",
    ),
    pressure_timeout: float = typer.Option(
        2.0,
        min=0.01,
        help="seconds a connection may wait on its client once over 3/4 of --max-connections are open; "
        "at the cap the longest-waiting one makes room for a new one",
    ),
    threads: int = typer.Option(0, help="ONNX Runtime intra-op threads per model (0 = its default)"),
    device: str = typer.Option(
        "cpu", help="cpu | cuda (ONNX Runtime's CUDA provider; an error when unavailable) | auto (CUDA if present)"
    ),
    token: str = typer.Option(None, envvar="OAR_SERVE_TOKEN", help="require 'Authorization: Bearer TOKEN'"),
    auth_token_file: Annotated[
        Path | None,
        typer.Option(help="file of sha256 hex digests, one a line, of the tokens inference accepts"),
    ] = None,
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
        device=device,
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
        security=SecurityConfig(token=token, token_digests=_token_digests(auth_token_file), admin_token=admin_token),
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
            max_buffered_body_bytes=max_buffered_body_bytes,
            pressure_timeout_s=pressure_timeout,
        ),
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
    sockets = _bind_ports(host, port, grpc_port, listen=workers == 1)  # a taken port should not wait either
    try:
        options = dataclasses.replace(
            options, port=_port_of(sockets["rest"]), grpc_port=_port_of(sockets.get("grpc")) if grpc_port else 0
        )
        dataplane, held = None, []
        if workers == 1:
            dataplane, loaded = build_dataplane(options)
            held = [f"{model.name}:{model.version}" for model in loaded]
            for model in loaded:
                console.print(f"loaded [bold]{escape(model.name)}:{model.version}[/] ({model.manifest.task})")
        else:
            # each worker binds the ports itself (SO_REUSEPORT): the check is all the parent does
            held = _selected_versions(options)
            for sock in sockets.values():
                sock.close()
            sockets = {}
        for sock in sockets.values():
            sock.listen(4096)
        scheme = "https" if tls_cert else "http"
        grpc_note = f", gRPC on {_address(host, options.grpc_port)}" if options.grpc_port else ""
        address = f"{scheme}://{_address(host, options.port)}/v2"
        console.print(f"serving on {address}{grpc_note} ({workers} worker(s), pid {os.getpid()})", soft_wrap=True)
        if model_dir is None:  # `oar models delete` refuses what a server on this hub holds
            with serving_record(oar_home(), held, address):
                run_server(options, dataplane, sockets or None)
        else:
            run_server(options, dataplane, sockets or None)
    finally:
        for sock in sockets.values():
            sock.close()


def _selected_versions(options: ServeOptions) -> list[str]:
    """What the workers will load from the hub, by the version policy (they load it themselves)."""
    if options.model_dir is not None:
        return []
    source = HubSource(Hub())
    selected = []
    for spec in options.models or tuple(source.names()):
        name, version = parse_model_spec(spec)
        versions = [version] if version else options.version_policy.select(source.versions(name))
        selected += [f"{name}:{v}" for v in versions]
    return selected


def _bind_ports(host: str, port: int, grpc_port: int, listen: bool) -> dict[str, socket.socket]:
    """Bind the REST (and gRPC) port now; a port in use is one line naming its flag, before any model loads."""
    sockets: dict[str, socket.socket] = {}
    wanted = [("rest", "--port", port)] + ([("grpc", "--grpc-port", grpc_port)] if grpc_port else [])
    for key, flag, number in wanted:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does: restart while in TIME_WAIT
        if not listen:  # the workers will bind the same port with SO_REUSEPORT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, number))
        except OSError as exc:
            sock.close()
            for bound in sockets.values():
                bound.close()
            reason = exc.strerror or str(exc)
            raise OarError(
                f"cannot serve on {_address(host, number)}: {reason.lower()}; choose another {flag}"
            ) from None
        sockets[key] = sock
    return sockets


def _port_of(sock: socket.socket | None) -> int:
    return sock.getsockname()[1] if sock is not None else 0


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _token_digests(path: Path | None) -> tuple[str, ...]:
    """The sha256 hex digests an ``--auth-token-file`` holds (one a line), checked so a wrong file fails at start."""
    if path is None:
        return ()
    try:
        digests = tuple(line.strip().lower() for line in path.read_text().splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InvalidInputError(f"cannot read --auth-token-file {path}: {reason}") from None
    if not digests or not all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in digests):
        raise InvalidInputError(f"--auth-token-file {path} must hold sha256 hex digests (64 hex digits), one a line")
    return digests
