"""Clients for oar servers (and any Open Inference Protocol v2 server)."""

from oar.client.client import ModelClient

__all__ = ["ModelClient"]
