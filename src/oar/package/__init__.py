"""The model package: a self-describing directory (manifest + model + tokenizer). No torch here."""

from oar.package.manifest import (
    CustomOpLibrary,
    Generation,
    Lineage,
    Manifest,
    Padding,
    Parity,
    RuntimeSpec,
    TensorSpec,
)
from oar.package.package import MANIFEST_FILE, ModelPackage

__all__ = [
    "MANIFEST_FILE",
    "CustomOpLibrary",
    "Generation",
    "Lineage",
    "Manifest",
    "ModelPackage",
    "Padding",
    "Parity",
    "RuntimeSpec",
    "TensorSpec",
]
