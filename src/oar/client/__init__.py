"""Clients for oar servers (and any Open Inference Protocol v2 server), over REST or gRPC."""

from oar.client._common import RetryPolicy
from oar.client.client import AsyncModelClient, ModelClient

__all__ = ["AsyncModelClient", "ModelClient", "RetryPolicy"]
