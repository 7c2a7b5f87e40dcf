"""Does the exported artifact compute what the source model computes, on real data?"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from oar.package import Parity
from oar.runtime.session import create_session

DEFAULT_TOLERANCE = 1e-4

Predict = Callable[[torch.Tensor], np.ndarray]


@torch.no_grad()
def check_parity(
    model: nn.Module, onnx_path: Path, batches: Iterable[torch.Tensor], tolerance: float = DEFAULT_TOLERANCE
) -> Parity:
    """Run both on the same inputs; pass when every logit is within ``tolerance`` and argmax agrees."""
    model.eval()
    session = create_session(onnx_path)
    input_name = session.get_inputs()[0].name
    return compare_outputs(
        lambda x: model(x).numpy(), lambda x: session.run(None, {input_name: x.numpy()})[0], batches, tolerance
    )


@torch.no_grad()
def compare_outputs(
    reference: Predict,
    candidate: Predict,
    batches: Iterable[torch.Tensor],
    tolerance: float,
    reference_name: str = "torch",
) -> Parity:
    """Max |difference| and argmax agreement of two predictors over the same real batches."""
    worst, agree, samples = 0.0, 0, 0
    for inputs in batches:
        expected, actual = reference(inputs), candidate(inputs)
        worst = max(worst, float(np.abs(expected - actual).max()))
        agree += int((expected.argmax(axis=1) == actual.argmax(axis=1)).sum())
        samples += len(expected)
    agreement = agree / max(samples, 1)
    return Parity(
        reference=reference_name,
        samples=samples,
        max_abs_diff=worst,
        argmax_agreement=agreement,
        tolerance=tolerance,
        passed=samples > 0 and worst <= tolerance and agreement == 1.0,
    )
