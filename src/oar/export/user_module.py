"""A user's own ``nn.Module`` for ``oar export --model-class``: class by import path, weights as safetensors.

No pickle: the architecture is code the user names (``package.module:Class``, imported from the current
directory or the environment) and the weights are a ``.safetensors`` file loaded strictly (every tensor
present, no extra one), so a weights file can never run code.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from safetensors.torch import load_model
from torch import nn

from oar._core.errors import InvalidInputError
from oar.export.onnx import InputSpec


def load_user_module(class_path: str, weights: str | Path, init_kwargs: str | None = None) -> nn.Module:
    """``module:Class`` built with ``init_kwargs`` (a JSON object), weights from ``weights``, in eval mode."""
    module_name, _, class_name = class_path.partition(":")
    if not module_name or not class_name:
        raise InvalidInputError(f"--model-class '{class_path}' must look like package.module:ClassName")
    weights = Path(weights)
    if weights.suffix != ".safetensors":
        raise InvalidInputError(f"{weights} is not a .safetensors file; oar loads no pickled weights (.pt, .bin)")
    if not weights.is_file():
        raise InvalidInputError(f"weights file {weights} does not exist")
    kwargs = _kwargs(init_kwargs)
    cls = _import_class(module_name, class_name)
    try:
        model = cls(**kwargs)
    except TypeError as exc:
        raise InvalidInputError(f"{class_path}(**{kwargs}) failed: {exc}") from None
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"{class_path} is not a torch.nn.Module")
    try:
        load_model(model, str(weights), strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"weights {weights} do not fit {class_path}: {first[:300]}") from None
    return model.eval()


def parse_input_spec(text: str) -> InputSpec:
    """``NAME:DTYPE:SHAPE[:MIN..MAX]``, SHAPE comma-separated with -1 for a dynamic dim.

    >>> parse_input_spec("image:float32:-1,1,28,28")
    >>> parse_input_spec("input_ids:int64:-1,-1:0..29999")
    """
    parts = text.split(":")
    if len(parts) not in (3, 4) or not parts[0]:
        raise InvalidInputError(f"--input-spec '{text}' must be NAME:DTYPE:SHAPE[:MIN..MAX], e.g. x:float32:-1,16")
    name, dtype, shape_text = parts[:3]
    try:
        shape = [None if d.strip() in ("-1", "None", "") else int(d) for d in shape_text.split(",")]
        value_range = None
        if len(parts) == 4:
            low, _, high = parts[3].partition("..")
            value_range = (float(low), float(high))
    except ValueError:
        raise InvalidInputError(f"--input-spec '{text}': dimensions and range must be numbers") from None
    return InputSpec(shape, dtype, name, value_range)


def _kwargs(init_kwargs: str | None) -> dict[str, Any]:
    if not init_kwargs:
        return {}
    try:
        kwargs = json.loads(init_kwargs)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--init-kwargs is not valid JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise InvalidInputError("--init-kwargs must be a JSON object, e.g. '{\"num_classes\": 10}'")
    return kwargs


def _import_class(module_name: str, class_name: str) -> type:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # the user's own modules, as `python -m` would find them
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(f"cannot import {module_name}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise InvalidInputError(f"{module_name} has no class {class_name}")
    return cls
