"""Export traps handled before export, so a slow graph never reaches production unnoticed.

``nn.EmbeddingBag`` exports (with either exporter) as an ONNX ``Loop`` over the bags, measured
~15x slower than a gather plus a masked reduction. In its 2-D form (one bag per row, padding
marked by ``padding_idx``) the two compute the same thing, so the module is swapped for that
before export and the parity check proves the swap; the 1-D ``offsets`` form cannot be
rewritten into a dense graph and is refused with the reason.
"""

from __future__ import annotations

import copy
import logging
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from oar._core.errors import OarError

log = logging.getLogger(__name__)


class ExportTrapWarning(UserWarning):
    """A module was rewritten before export because its direct export is known to be slow."""


class EmbeddingBagAsGather(nn.Module):
    """``nn.EmbeddingBag`` over ``[batch, bag]`` ids as ``embedding`` + masked sum/mean/max."""

    def __init__(self, bag: nn.EmbeddingBag) -> None:
        super().__init__()
        if bag.max_norm is not None:
            raise OarError("nn.EmbeddingBag with max_norm renormalises weights in place; oar cannot export it")
        self.weight = bag.weight
        self.mode = bag.mode
        self.padding_idx = bag.padding_idx

    def forward(
        self, input: torch.Tensor, offsets: torch.Tensor | None = None, per_sample_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        if offsets is not None or per_sample_weights is not None or input.dim() != 2:
            raise OarError(
                "nn.EmbeddingBag called with offsets (1-D input) exports as a slow ONNX Loop and cannot be "
                "rewritten; call it with a padded [batch, bag] tensor and padding_idx, or use nn.Embedding"
            )
        vectors = F.embedding(input, self.weight)
        if self.padding_idx is None:
            mask = torch.ones_like(input, dtype=torch.bool).unsqueeze(-1)
        else:
            mask = (input != self.padding_idx).unsqueeze(-1)
        if self.mode == "max":
            best = vectors.masked_fill(~mask, float("-inf")).amax(1)
            return torch.where(mask.any(1), best, torch.zeros_like(best))
        total = (vectors * mask).sum(1)
        if self.mode == "sum":
            return total
        return total / mask.sum(1).clamp(min=1).to(total.dtype)


def rewrite_export_traps(model: nn.Module) -> nn.Module:
    """Return ``model`` itself, or a rewritten copy (with a warning) when it holds a known trap."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.EmbeddingBag)]
    if not names:
        return model
    message = (
        f"rewriting nn.EmbeddingBag ({', '.join(names)}) as Embedding + masked reduction before export: "
        "exported directly it becomes an ONNX Loop that runs ~15x slower"
    )
    warnings.warn(message, ExportTrapWarning, stacklevel=3)
    log.warning(message)
    rewritten = copy.deepcopy(model)
    if names == [""]:
        return EmbeddingBagAsGather(rewritten)  # type: ignore[arg-type]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = rewritten.get_submodule(parent_name) if parent_name else rewritten
        setattr(parent, child, EmbeddingBagAsGather(getattr(parent, child)))
    return rewritten
