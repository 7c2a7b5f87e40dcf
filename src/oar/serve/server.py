"""Start a server: load models from the hub, bind, serve until told to stop."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import uvicorn

from oar._core.errors import OarError
from oar.hub import Hub
from oar.serve.dataplane import DataPlane
from oar.serve.repository import LoadedModel, ModelRepository, parse_model_spec
from oar.serve.rest import DEFAULT_MAX_BODY_BYTES, RestApp

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8500


def build_app(
    model_specs: Sequence[str] = (), hub: Hub | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    intra_op_threads: int = 0,
) -> tuple[RestApp, list[LoadedModel]]:
    """Load ``NAME[:VERSION]`` models (all registered models' latest versions when none are given)."""
    repository = ModelRepository(hub or Hub(), intra_op_threads)
    if model_specs:
        loaded = [repository.load(*parse_model_spec(spec)) for spec in model_specs]
    else:
        loaded = repository.load_all_latest()
    if not loaded:
        raise OarError("no models to serve: the hub is empty; run `oar quickstart` or register a model first")
    return RestApp(DataPlane(repository), max_body_bytes), loaded


def serve(app: RestApp, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, log_level: str = "warning") -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http="httptools", access_log=False,
        log_level=log_level, lifespan="on", timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
