"""Recompute (activation checkpointing): keep fewer activations, run each block's forward twice.

Each chosen block's ``forward`` is wrapped in non-reentrant
``torch.utils.checkpoint`` with the RNG state preserved, so dropout draws the
same masks in the recomputation and the gradients equal those of a plain run.
Only the instance's ``forward`` is replaced: parameter names, checkpoints and
ONNX export see the model unchanged, and ``remove()`` puts it back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class RecomputeHandle:
    """The blocks wrapped by ``apply_recompute``; ``remove()`` restores their forwards."""

    def __init__(self, blocks: dict[str, nn.Module]) -> None:
        self.blocks = blocks

    @property
    def names(self) -> list[str]:
        return list(self.blocks)

    def remove(self) -> None:
        for module in self.blocks.values():
            module.__dict__.pop("forward", None)


def find_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The model's own ``recompute_blocks()`` if it has one, else every member of every ``nn.ModuleList``."""
    if hasattr(model, "recompute_blocks"):
        chosen = list(model.recompute_blocks())
        return {name: m for name, m in model.named_modules() if any(m is c for c in chosen)}
    return {
        f"{name}.{i}" if name else str(i): block
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        for i, block in enumerate(module)
    }


def apply_recompute(model: nn.Module, spec: bool | list[str]) -> RecomputeHandle:
    """Wrap the blocks ``spec`` names (``True``: see ``find_blocks``) in activation checkpointing."""
    if spec is True:
        blocks = find_blocks(model)
        if not blocks:
            raise ValueError(
                f"recompute=True found no blocks in {type(model).__name__} (no nn.ModuleList, no "
                "recompute_blocks()); pass a list of module names instead"
            )
    else:
        blocks = {}
        for name in spec:
            try:
                blocks[name] = model.get_submodule(name)
            except AttributeError:
                known = ", ".join(n for n, _ in model.named_children())
                raise ValueError(
                    f"recompute: {type(model).__name__} has no module '{name}'; top level: {known}"
                ) from None
    for module in blocks.values():
        module.forward = _checkpointed(module.forward)  # type: ignore[method-assign]
    return RecomputeHandle(blocks)


def _checkpointed(forward: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():  # evaluation: nothing to save, nothing to recompute
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, preserve_rng_state=True, **kwargs)

    return run
