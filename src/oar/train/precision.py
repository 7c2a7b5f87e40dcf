"""Precision plug-ins: where autocast goes and how the loss is scaled, one object per mode.

``"32"`` is plain float32. ``"bf16-mixed"`` runs matmuls and convolutions in
bfloat16 under autocast (works on CPU) while weights and optimizer stay float32.
``"16-mixed"`` uses float16 and a ``GradScaler``, whose scale is part of the
checkpoint: a resumed run must not restart the scale search from 65536.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

PrecisionName = Literal["32", "bf16-mixed", "16-mixed"]
PRECISIONS: tuple[str, ...] = ("32", "bf16-mixed", "16-mixed")


class Precision:
    """Float32: no autocast, no scaling."""

    name: str = "32"

    def __init__(self, device_type: str) -> None:
        self.device_type = device_type

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        yield

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter], max_norm: float | None) -> bool:
        """Clip and step; return False when the step was skipped (fp16 overflow)."""
        if max_norm:
            nn.utils.clip_grad_norm_(list(params), max_norm)
        optimizer.step()
        return True

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class MixedPrecision(Precision):
    """Autocast to ``dtype`` around the forward pass and the loss."""

    def __init__(self, device_type: str, dtype: torch.dtype, name: str) -> None:
        super().__init__(device_type)
        self.dtype = dtype
        self.name = name

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield


class Float16Precision(MixedPrecision):
    """float16 autocast with dynamic loss scaling, so small gradients do not flush to zero."""

    def __init__(self, device_type: str) -> None:
        super().__init__(device_type, torch.float16, "16-mixed")
        self.scaler = torch.amp.GradScaler(device_type)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter], max_norm: float | None) -> bool:
        self.scaler.unscale_(optimizer)
        if max_norm:
            nn.utils.clip_grad_norm_(list(params), max_norm)
        scale = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        return self.scaler.get_scale() >= scale  # the scale drops only when the step was skipped

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


def make_precision(name: str, device_type: str) -> Precision:
    if name == "32":
        return Precision(device_type)
    if name == "bf16-mixed":
        return MixedPrecision(device_type, torch.bfloat16, name)
    if name == "16-mixed":
        return Float16Precision(device_type)
    raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got '{name}'")


@dataclass
class PrecisionReport:
    """The precision asked for, the one used, and the step times the choice rests on."""

    requested: str
    used: str
    reason: str = ""
    fp32_step_ms: float | None = None
    mixed_step_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_PROBE_ROUNDS = 3
MAX_SLOWDOWN = 1.25  # a mixed step slower than this x float32 buys memory at too high a price


def probe_precision(
    name: str,
    device_type: str,
    step: Callable[[Precision], None],
) -> PrecisionReport:
    """Time ``step`` (forward + backward on one batch, no optimizer step) in ``name`` and in float32.

    Mixed precision pays off only where the hardware computes in bfloat16/float16 natively; on a
    CPU without it (no AVX512-BF16/AMX) ``bf16-mixed`` was ~7x slower per step than float32. One
    untimed round warms both up, then ``_PROBE_ROUNDS`` rounds alternate them, and the medians
    decide: slower than ``MAX_SLOWDOWN`` x float32 falls back to ``"32"``.
    """
    if name == "32":
        return PrecisionReport(name, name, "float32 asked for")
    mixed, fp32 = make_precision(name, device_type), Precision(device_type)
    times: dict[str, list[float]] = {"mixed": [], "fp32": []}
    for round_ in range(_PROBE_ROUNDS + 1):
        for key, precision in (("mixed", mixed), ("fp32", fp32)):
            started = time.perf_counter()
            step(precision)
            if round_:
                times[key].append(time.perf_counter() - started)
    mixed_s, fp32_s = statistics.median(times["mixed"]), statistics.median(times["fp32"])
    report = PrecisionReport(name, name, fp32_step_ms=round(fp32_s * 1000, 3), mixed_step_ms=round(mixed_s * 1000, 3))
    ratio = mixed_s / fp32_s
    if ratio > MAX_SLOWDOWN:
        report.used = "32"
        report.reason = (
            f"{name} step {mixed_s * 1000:.1f} ms is {ratio:.1f}x the float32 step {fp32_s * 1000:.1f} ms on this "
            f"{device_type} (no native support?): training in float32; precision_probe=False keeps {name}"
        )
    else:
        report.reason = f"{name} step {ratio:.2f}x the float32 step"
    return report
