"""The source model inside a package (``source/``): weights and architecture, for re-export.

A package is served from ``model.onnx``, but ``oar export`` (another format, a newer exporter)
and parity checks need the PyTorch module itself. It is kept as safetensors weights plus a
JSON record of the class and its constructor arguments. Only classes from ``oar.models``
can be rebuilt, so a package never makes oar import arbitrary code.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model
from torch import nn

from oar._core.errors import OarError
from oar.package import ModelPackage

SOURCE_DIR = "source"
WEIGHTS_FILE = f"{SOURCE_DIR}/weights.safetensors"
ARCHITECTURE_FILE = f"{SOURCE_DIR}/architecture.json"
_ALLOWED_MODULE_PREFIX = "oar.models."


def architecture_of(model: nn.Module) -> dict[str, Any] | None:
    """``{"class": "module:Name", "kwargs": {...}}`` for rebuildable models, else ``None``."""
    cls = type(model)
    if not cls.__module__.startswith(_ALLOWED_MODULE_PREFIX):
        return None
    if not hasattr(model, "architecture_kwargs"):
        return None
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "kwargs": model.architecture_kwargs()}


def save_source(model: nn.Module, root: Path) -> bool:
    """Write ``source/`` under ``root``; False (nothing written) when the model cannot be rebuilt."""
    architecture = architecture_of(model)
    if architecture is None:
        return False
    (root / SOURCE_DIR).mkdir(parents=True, exist_ok=True)
    save_model(model, str(root / WEIGHTS_FILE))
    (root / ARCHITECTURE_FILE).write_text(json.dumps(architecture, indent=2) + "\n", encoding="utf-8")
    return True


def load_source(package: ModelPackage) -> nn.Module:
    """Rebuild the package's PyTorch module in eval mode, or say why it cannot be."""
    if not package.file(ARCHITECTURE_FILE).is_file():
        raise OarError(
            f"package {package.model_id} carries no source model (it was quantized, imported, or its class "
            "is not in oar.models); export it from Python with oar.jit.save"
        )
    architecture = json.loads(package.file(ARCHITECTURE_FILE).read_text(encoding="utf-8"))
    module_name, _, class_name = str(architecture.get("class", "")).partition(":")
    if not module_name.startswith(_ALLOWED_MODULE_PREFIX):
        raise OarError(f"package {package.model_id}: source class '{module_name}' is not in oar.models; refused")
    cls = getattr(importlib.import_module(module_name), class_name)
    model = cls(**architecture.get("kwargs", {}))
    load_model(model, str(package.file(WEIGHTS_FILE)))
    return model.eval()
