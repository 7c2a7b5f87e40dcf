"""The hub: datasets, runs and model versions with lineage (SQLAlchemy + content-addressed files)."""

from oar.hub.entities import DatasetVersion, ModelVersion, Run
from oar.hub.hub import Hub

__all__ = ["DatasetVersion", "Hub", "ModelVersion", "Run"]
