"""``oar_dlrm::bag_interact``: the recommender's fused embedding-bag + pairwise interaction op.

A DLRM-style model looks up one bag of ids per sparse feature, mean-pools each bag, stacks the
pooled vectors with the dense (bottom-MLP) vector and feeds the top MLP with the dense vector and
every pairwise dot product. Written with generic torch ops that is a gather of a
``[batch, features, bag, dim]`` tensor, a mask, a reduction, a batched matmul and a gather of the
lower triangle; the fused kernel walks each row once with no intermediate tensors.

Inputs: ``ids`` int64 ``[B, F, L]`` (negative = padding; an empty bag pools to zeros), ``offsets``
int64 ``[F]`` (first row of each feature's table inside ``weight``), ``weight`` ``[R, D]``, ``dense``
``[B, D]``. Output ``[B, D + (F + 1) F / 2]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from oar.ops._build import CppSource
from oar.ops._definition import custom_op

_KERNELS = Path(__file__).parent / "kernels"
_CORE = _KERNELS / "bag_interact.h"


def pool_and_interact(ids: Tensor, offsets: Tensor, weight: Tensor, dense: Tensor) -> Tensor:
    """The op from generic torch ops (embedding + masked mean, bmm, lower triangle): exports to plain ONNX."""
    pooled = _pool(ids, offsets, weight)
    return _interact(pooled, dense)


@custom_op("oar_dlrm::bag_interact")
def bag_interact(ids: Tensor, offsets: Tensor, weight: Tensor, dense: Tensor) -> Tensor:
    """Reference: the generic version, plus the bounds check the kernels make (an id past its table)."""
    valid = ids >= 0
    ends = torch.cat([offsets[1:], offsets.new_tensor([weight.shape[0]])])
    outside = valid & (ids + offsets.view(1, -1, 1) >= ends.view(1, -1, 1))
    if bool(outside.any()):
        b, f, slot = (int(i) for i in outside.nonzero()[0])
        raise IndexError(f"bag_interact: id {int(ids[b, f, slot])} of feature {f} is outside its embedding table")
    return pool_and_interact(ids, offsets, weight, dense)


def _pool(ids: Tensor, offsets: Tensor, weight: Tensor) -> Tensor:
    valid = ids >= 0
    rows = torch.where(valid, ids + offsets.view(1, -1, 1), torch.zeros_like(ids))
    mask = valid.unsqueeze(-1).to(weight.dtype)
    counts = valid.sum(-1, keepdim=True).clamp(min=1).to(weight.dtype)
    return (torch.nn.functional.embedding(rows, weight) * mask).sum(2) / counts


def _interact(pooled: Tensor, dense: Tensor) -> Tensor:
    vectors = torch.cat([dense.unsqueeze(1), pooled], 1)
    products = torch.bmm(vectors, vectors.transpose(1, 2))
    n = vectors.shape[1]
    li, lj = torch.tril_indices(n, n, offset=-1, device=dense.device)
    return torch.cat([dense, products[:, li, lj]], 1)


@bag_interact.register_fake
def _(ids: Tensor, offsets: Tensor, weight: Tensor, dense: Tensor) -> Tensor:
    features = ids.shape[1]
    return dense.new_empty((dense.shape[0], dense.shape[1] + (features + 1) * features // 2))


def _setup_context(ctx: Any, inputs: tuple[Tensor, ...], output: Tensor) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor, Tensor]:
    """d out / d (weight, dense): the pairwise products' gradient, spread back over each bag's rows."""
    ids, offsets, weight, dense = ctx.saved_tensors
    d = dense.shape[1]
    valid = ids >= 0
    pooled = _pool(ids, offsets, weight)
    vectors = torch.cat([dense.unsqueeze(1), pooled], 1)
    n = vectors.shape[1]
    li, lj = torch.tril_indices(n, n, offset=-1, device=dense.device)
    pair_grad = grad.new_zeros((grad.shape[0], n, n))
    pair_grad = pair_grad.index_put((torch.arange(grad.shape[0], device=grad.device)[:, None], li, lj), grad[:, d:])
    symmetric = (pair_grad + pair_grad.transpose(1, 2)).contiguous()  # a strided input sends bmm to a slow path
    vector_grad = torch.bmm(symmetric, vectors)
    dense_grad = grad[:, :d] + vector_grad[:, 0]
    counts = valid.sum(-1, keepdim=True).clamp(min=1).to(weight.dtype)
    slot_grad = (vector_grad[:, 1:] / counts).unsqueeze(2) * valid.unsqueeze(-1).to(weight.dtype)  # [B, F, L, D]
    rows = torch.where(valid, ids + offsets.view(1, -1, 1), torch.zeros_like(ids))
    weight_grad = torch.zeros_like(weight).index_add(0, rows.reshape(-1), slot_grad.reshape(-1, d))
    return None, None, weight_grad, dense_grad


bag_interact.register_autograd(_backward, setup_context=_setup_context)


@bag_interact.register_samples
def _samples(dtype: torch.dtype, generator: torch.Generator) -> list[tuple[Tensor, ...]]:
    """Random shapes: batch 1-9, 1-6 features, bags of 1-5 with ~30% padding, dims 1-12, ragged tables."""
    out = []
    for _ in range(4):
        ranges = ((1, 10), (1, 7), (1, 6), (1, 13))
        b, f, bag, d = (int(torch.randint(lo, hi, (1,), generator=generator)) for lo, hi in ranges)
        sizes = torch.randint(1, 20, (f,), generator=generator)
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)[:-1]])
        ids = (torch.rand((b, f, bag), generator=generator) * sizes.view(1, -1, 1)).long()
        ids = torch.where(torch.rand(ids.shape, generator=generator) < 0.3, torch.full_like(ids, -1), ids)
        weight = torch.randn((int(sizes.sum()), d), generator=generator, dtype=dtype).requires_grad_()
        dense = torch.randn((b, d), generator=generator, dtype=dtype).requires_grad_()
        out.append((ids, offsets, weight, dense))
    return out


bag_interact.register_kernel(
    "cpu", cpp_source=CppSource((_KERNELS / "bag_interact_torch.cpp",), headers=(_CORE,)), function="bag_interact"
)


def _cuda_kernel(ids: Tensor, offsets: Tensor, weight: Tensor, dense: Tensor) -> Tensor:
    """The Triton kernel for float32 (imported on first CUDA call); other dtypes run the reference."""
    if dense.dtype != torch.float32:
        return bag_interact.reference(ids, offsets, weight, dense)
    from oar.ops._dlrm_triton import bag_interact_cuda

    return bag_interact_cuda(ids, offsets, weight, dense)


bag_interact.register_kernel("cuda", triton=_cuda_kernel)
bag_interact.register_onnx("oar.dlrm", "BagInteract", CppSource((_KERNELS / "bag_interact_ort.cpp",), headers=(_CORE,)))
