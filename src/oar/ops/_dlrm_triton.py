"""The CUDA kernel of ``oar_dlrm::bag_interact`` in Triton: one program per batch row.

Imported only when the op runs on a CUDA tensor (Triton and a GPU are needed then, not before).
Each program gathers the row's bags into a ``[BLOCK_F, BLOCK_D]`` block (row 0 is the dense
vector), mean-pools them, takes the block's Gram matrix with one ``tl.dot`` and stores its
strictly lower triangle after the dense vector. float32 only; other dtypes run the reference.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _bag_interact_kernel(
    ids_ptr, offsets_ptr, weight_ptr, dense_ptr, out_ptr, F, L, D, width,
    BLOCK_F: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    f = tl.arange(0, BLOCK_F)
    d = tl.arange(0, BLOCK_D)
    is_bag = (f >= 1) & (f <= F)
    in_dim = d < D
    feature = tl.where(is_bag, f - 1, 0)
    base = tl.load(offsets_ptr + feature, mask=is_bag, other=0)
    acc = tl.zeros((BLOCK_F, BLOCK_D), dtype=tl.float32)
    count = tl.zeros((BLOCK_F,), dtype=tl.float32)
    for slot in range(0, L):
        ids = tl.load(ids_ptr + (b * F + feature) * L + slot, mask=is_bag, other=-1)
        present = ids >= 0
        rows = tl.where(present, ids + base, 0)
        acc += tl.load(weight_ptr + rows[:, None] * D + d[None, :], mask=present[:, None] & in_dim[None, :], other=0.0)
        count += present.to(tl.float32)
    acc = acc / tl.maximum(count, 1.0)[:, None]
    dense = tl.load(dense_ptr + b * D + d, mask=in_dim, other=0.0)
    acc = tl.where((f == 0)[:, None], dense[None, :], acc)
    products = tl.dot(acc, tl.trans(acc), input_precision="ieee")
    tl.store(out_ptr + b * width + d, dense, mask=in_dim)
    i = f[:, None]
    j = f[None, :]
    tl.store(out_ptr + b * width + D + i * (i - 1) // 2 + j, products, mask=(j < i) & (i <= F))


def bag_interact_cuda(
    ids: torch.Tensor, offsets: torch.Tensor, weight: torch.Tensor, dense: torch.Tensor
) -> torch.Tensor:
    """Launch one program per row; ids outside their table are refused first (the kernel cannot raise)."""
    ends = torch.cat([offsets[1:], offsets.new_tensor([weight.shape[0]])])
    if bool(((ids >= 0) & (ids + offsets.view(1, -1, 1) >= ends.view(1, -1, 1))).any()):
        raise IndexError("bag_interact: an id is outside its embedding table")
    batch, features, bag = ids.shape
    dim = weight.shape[1]
    out = torch.empty((batch, dim + (features + 1) * features // 2), device=dense.device, dtype=dense.dtype)
    block_f = max(16, triton.next_power_of_2(features + 1))
    block_d = max(16, triton.next_power_of_2(dim))
    _bag_interact_kernel[(batch,)](
        ids.contiguous(), offsets.contiguous(), weight.contiguous(), dense.contiguous(), out,
        features, bag, dim, out.shape[1], BLOCK_F=block_f, BLOCK_D=block_d,
    )  # fmt: skip
    return out
