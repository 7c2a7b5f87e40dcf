"""The second format: a ``torch.export`` program saved as ``.pt2``, for users who stay in PyTorch.

``torch.export.save`` writes weights and a serialized graph (no pickled Python objects), and
``torch.export.load`` gives back a module that runs without the original class, so a ``.pt2`` is
parity-checked by loading it back, exactly as a user would.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from oar._core.errors import OarError
from oar.export.onnx import InputSpec
from oar.export.parity import DEFAULT_TOLERANCE, compare_outputs
from oar.export.traps import rewrite_export_traps
from oar.package import Parity


def export_pt2(model: nn.Module, path: Path, input_spec: list[InputSpec]) -> Path:
    """Trace ``model`` with dynamic axes where the spec has ``None`` and save the program to ``path``."""
    model = rewrite_export_traps(model.eval())
    examples = tuple(spec.example() for spec in input_spec)
    dynamic_shapes = tuple(
        {i: torch.export.Dim.AUTO for i, d in enumerate(spec.shape) if d is None} for spec in input_spec
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, examples, dynamic_shapes=dynamic_shapes)
    except Exception as exc:  # torch.export raises many types; the first line says what broke
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OarError(f"torch.export could not capture the model: {reason}") from None
    torch.export.save(program, str(path))
    return path


def check_pt2_parity(
    model: nn.Module, path: Path, batches: Iterable[torch.Tensor], tolerance: float = DEFAULT_TOLERANCE
) -> Parity:
    """Load the saved program back and compare it with the eager model on real batches."""
    model.eval()
    loaded = torch.export.load(str(path)).module()
    return compare_outputs(lambda x: model(x).numpy(), lambda x: loaded(x).detach().numpy(), batches, tolerance)
