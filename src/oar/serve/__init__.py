"""Serving: model repository, dynamic batching, protocol-neutral data plane, REST and gRPC front ends."""

from oar.serve.batching import DynamicBatcher
from oar.serve.config import BatchingConfig, ConnectionLimits, SecurityConfig, VersionPolicy
from oar.serve.dataplane import DataPlane
from oar.serve.repository import DirectorySource, HubSource, LoadedModel, ModelRepository, parse_model_spec
from oar.serve.rest import RestApp
from oar.serve.server import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServeOptions,
    build_app,
    build_dataplane,
    serve,
)

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "BatchingConfig",
    "ConnectionLimits",
    "DataPlane",
    "DirectorySource",
    "DynamicBatcher",
    "HubSource",
    "LoadedModel",
    "ModelRepository",
    "RestApp",
    "SecurityConfig",
    "ServeOptions",
    "VersionPolicy",
    "build_app",
    "build_dataplane",
    "parse_model_spec",
    "serve",
]
