"""A small Transformer encoder classifier over token ids, written in-tree.

Pre-norm blocks (attention, then a GELU feed-forward), learned positions, and
masked mean pooling: padding (id 0) is masked out of attention and of the pool,
so a text's logits do not depend on how far its batch is padded. Blocks sit in
an ``nn.ModuleList``, which is what ``recompute=True`` wraps. It uses only ops
both ONNX exporters know (``scaled_dot_product_attention`` with a boolean mask).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``x``: [b, s, d]; ``keep``: [b, 1, 1, s] bool, True where a key may be attended to."""
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        x = x + self.dropout(self.proj(attended.transpose(1, 2).reshape(b, s, d)))
        return x + self.dropout(self.ff(self.norm2(x)))


class TransformerClassifier(nn.Module):
    """Token ids ``[batch, seq]`` (0 = padding) -> logits ``[batch, num_classes]``."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        dim: int = 128,
        depth: int = 2,
        heads: int = 4,
        ff_mult: int = 4,
        max_len: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self._architecture = {
            "vocab_size": vocab_size,
            "num_classes": num_classes,
            "dim": dim,
            "depth": depth,
            "heads": heads,
            "ff_mult": ff_mult,
            "max_len": max_len,
            "dropout": dropout,
        }
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(1, max_len, dim))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, ff_mult, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq_len = input_ids.shape[1]
        mask = input_ids != 0  # [b, s]
        # an all-padding row (an empty text) would give NaN attention: let it attend everywhere;
        # the pool below still counts none of its positions
        keep = (mask | ~mask.any(dim=1, keepdim=True))[:, None, None, :]
        x = self.dropout(self.embedding(input_ids) + self.position[:, :seq_len])
        for block in self.blocks:
            x = block(x, keep)
        x = self.norm(x)
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))

    def architecture_kwargs(self) -> dict[str, Any]:
        """How ``oar export`` rebuilds it from a package: the constructor's arguments, weights from ``source/``."""
        return dict(self._architecture)
