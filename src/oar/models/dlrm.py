"""A DLRM-style click-through-rate model (Naumov et al., 2019): dense MLP, embedding bags, dot interaction.

``fused=True`` runs bags + interaction as one custom op (``oar_dlrm::bag_interact``: C++ in PyTorch,
a custom-domain node in ONNX with oar's ONNX Runtime kernel); ``fused=False`` is the same model from
generic torch ops (embedding + masked mean, bmm, lower triangle), which exports to plain ONNX.
Same parameters, same answers: ``load_state_dict`` moves weights between the two.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from oar.ops.dlrm import bag_interact, pool_and_interact


class DLRM(nn.Module):
    """``DLRM(cardinalities)(dense [B, 13], ids [B, F, L]) -> logits [B, 2]`` (no click, click)."""

    def __init__(
        self,
        cardinalities: Sequence[int],
        dense_features: int = 13,
        dim: int = 16,
        bottom: Sequence[int] = (64,),
        top: Sequence[int] = (128,),
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.fused = fused
        rows = int(sum(cardinalities))
        bound = 1.0 / max(cardinalities) ** 0.5
        self.embedding = nn.Parameter(torch.empty(rows, dim).uniform_(-max(bound, 0.01), max(bound, 0.01)))
        starts = torch.tensor([0, *list(cardinalities)[:-1]], dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", starts, persistent=True)
        self.bottom = _mlp([dense_features, *bottom, dim], last_relu=True)
        features = len(cardinalities)
        self.top = _mlp([dim + (features + 1) * features // 2, *top, 2], last_relu=False)

    def forward(self, dense: Tensor, ids: Tensor) -> Tensor:
        x = self.bottom(dense)
        interact = bag_interact if self.fused else pool_and_interact
        return self.top(interact(ids, self.offsets, self.embedding, x))


class ClickProbability(nn.Module):
    """The served form: ``(dense, ids) -> click probability [B]``."""

    def __init__(self, model: DLRM) -> None:
        super().__init__()
        self.model = model

    def forward(self, dense: Tensor, ids: Tensor) -> Tensor:
        logits = self.model(dense, ids)
        return torch.sigmoid(logits[:, 1] - logits[:, 0])


class PackedInputs(nn.Module):
    """The Trainer's form: one float tensor ``[B, 13 + F * L]`` (dense, then ids) per batch -> logits."""

    def __init__(self, model: DLRM, dense_features: int, features: int, bag: int) -> None:
        super().__init__()
        self.model, self.dense_features, self.shape = model, dense_features, (features, bag)

    def forward(self, packed: Tensor) -> Tensor:
        dense = packed[:, : self.dense_features]
        ids = packed[:, self.dense_features :].round().long().view(-1, *self.shape)
        return self.model(dense, ids)

    def split(self, packed: Tensor) -> tuple[Tensor, Tensor]:
        """A packed batch as the served model's two inputs ``(dense, ids)``."""
        return unpack(packed, self.dense_features, *self.shape)


def packed_dlrm(
    features: Mapping[str, Any],
    num_classes: int = 2,
    dim: int = 16,
    bottom: tuple[int, ...] = (64,),
    top: tuple[int, ...] = (128,),
    fused: bool = True,
) -> PackedInputs:
    """Arch ``dlrm`` of ``oar train``: a DLRM for a click-through-rate dataset's packed rows.

    ``features`` is the dataset card's layout (``dense_features``, ``cardinalities``, ``bag``); the
    model answers (no click, click), so ``num_classes`` must be 2.
    """
    if num_classes != 2:
        raise ValueError(f"dlrm predicts click / no click (2 classes); the dataset has {num_classes}")
    cards = [int(c) for c in features["cardinalities"]]
    dense = int(features["dense_features"])
    model = DLRM(cards, dense_features=dense, dim=dim, bottom=bottom, top=top, fused=fused)
    return PackedInputs(model, dense, len(cards), int(features["bag"]))


def unpack(packed: Tensor, dense_features: int, features: int, bag: int) -> tuple[Tensor, Tensor]:
    """``pack``'s inverse: ``(dense float32 [B, dense_features], ids int64 [B, features, bag])``."""
    ids = packed[:, dense_features:].round().long().view(-1, features, bag)
    return packed[:, :dense_features].float().contiguous(), ids


def pack(dense: Tensor, ids: Tensor) -> Tensor:
    """Dense features and ids in one float tensor (ids stay exact below 2**24)."""
    return torch.cat([dense, ids.flatten(1).float()], 1)


def _mlp(sizes: Sequence[int], last_relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
