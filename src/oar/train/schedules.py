"""Learning-rate schedules as ``LambdaLR`` factors: warm-up, then cosine, linear or constant.

A factor is a pure function of the step, so a resumed run rebuilds it from the
config and only the scheduler's step counter comes from the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable

SCHEDULES = ("warmup_cosine", "warmup_linear", "constant")


def lr_factor(name: str, total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got '{name}'")
    warmup = max(1, int(total_steps * warmup_fraction)) if warmup_fraction > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if name == "warmup_linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
