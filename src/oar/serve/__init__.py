"""Serving: model repository, protocol-neutral data plane, REST front end."""

from oar.serve.dataplane import DataPlane
from oar.serve.repository import LoadedModel, ModelRepository, parse_model_spec
from oar.serve.rest import RestApp
from oar.serve.server import DEFAULT_HOST, DEFAULT_PORT, build_app, serve

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DataPlane",
    "LoadedModel",
    "ModelRepository",
    "RestApp",
    "build_app",
    "parse_model_spec",
    "serve",
]
