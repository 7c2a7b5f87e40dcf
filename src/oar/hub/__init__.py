"""The hub: datasets, runs and model versions with lineage and aliases (SQLAlchemy + content-addressed files)."""

from oar.hub.entities import (
    Alias,
    AliasEvent,
    DatasetVersion,
    ModelVersion,
    Page,
    RegisteredDataset,
    RegisteredModel,
    Run,
)
from oar.hub.hub import Hub
from oar.hub.specs import ModelRef, parse_model_ref

__all__ = [
    "Alias",
    "AliasEvent",
    "DatasetVersion",
    "Hub",
    "ModelRef",
    "ModelVersion",
    "Page",
    "RegisteredDataset",
    "RegisteredModel",
    "Run",
    "parse_model_ref",
]
