"""What determines a run, recorded in every checkpoint so a resume cannot silently change it.

A checkpoint continues the run that wrote it only if the settings that decide what each step
computes are the same: the optimisation settings (a hash of ``TrainerConfig`` without the
fields that only say where, how often or how fast: checkpoint, TensorBoard, threads, device,
graph mode), the training data (examples, batches, batch size, shuffle seed) and the model
(parameter names, shapes, dtypes). ``differences`` says what changed, key by key, so the
refusal can tell the user exactly why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from torch import nn

from oar.train.batches import StatefulBatches
from oar.train.config import TrainerConfig

# fields that change where or how fast a run goes, never what it computes
_NOT_RUN_DEFINING = frozenset(
    {
        "checkpoint",
        "tensorboard_dir",
        "threads",
        "device",
        "mode",
        "compile_backend",
        "compile_probe_steps",
        "compile_min_speedup",
        "compile_policy",
        "compile_cache_dir",
        "precision_probe",
    }
)


def run_fingerprint(config: TrainerConfig, model: nn.Module, data: Iterable[Any]) -> dict[str, Any]:
    settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_RUN_DEFINING}
    return {
        "config_sha256": _sha256(settings),
        "config": settings,
        "data": data_fingerprint(data),
        "model": model_fingerprint(model),
    }


def data_fingerprint(data: Iterable[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"batches": len(data)}  # type: ignore[arg-type]
    if isinstance(data, StatefulBatches):
        found |= {
            "examples": data.num_examples,
            "batch_size": data.batch_size,
            "shuffle": data.shuffle,
            "seed": data.seed,
        }
    return found


def model_fingerprint(model: nn.Module) -> dict[str, Any]:
    layout = [f"{name}:{tuple(t.shape)}:{t.dtype}" for name, t in model.state_dict().items()]
    return {"tensors": len(layout), "sha256": _sha256(layout)}


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable changes from ``saved`` to ``current`` (empty when the run is the same)."""
    changes = []
    old_config, new_config = saved.get("config", {}), current.get("config", {})
    # A setting oar gained after the checkpoint was written is not a change of the run (an upgrade resumes).
    for key in sorted(old_config or new_config):
        if old_config.get(key) != new_config.get(key):
            changes.append(f"{key} {old_config.get(key)!r} -> {new_config.get(key)!r}")
    old_data, new_data = saved.get("data", {}), current.get("data", {})
    for key in sorted(set(old_data) | set(new_data)):
        if old_data.get(key) != new_data.get(key):
            changes.append(f"data {key} {old_data.get(key)!r} -> {new_data.get(key)!r}")
    if saved.get("model") != current.get("model"):
        changes.append("model parameters (names, shapes or dtypes) differ")
    return changes


def model_changed(saved: dict[str, Any], current: dict[str, Any]) -> bool:
    return saved.get("model") != current.get("model")


def _sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
