"""Data-parallel training over ``torch.distributed`` (gloo on CPU), as started by torchrun.

Every rank walks the same global batch order and trains on its slice of each
batch (rows ``rank::world_size``); DDP averages the gradients. The global batch,
the data position and the checkpoint are therefore the same at any world size,
which is what lets a checkpoint written by 4 processes resume on 1, or 1 on 2.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """Join the process group torchrun describes in the environment; a single process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("OAR_DIST_BACKEND") == "nccl" else "gloo"
        dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size())


def wrap(model: nn.Module, world: World) -> nn.Module:
    """DDP around ``model``, its batch norms first made to normalise by the global batch (``sync_batch_norm``)."""
    if not world.distributed:
        return model
    sync_batch_norm(model)
    return nn.parallel.DistributedDataParallel(model)


class _GlobalBatchStats:
    """A batch norm that, in training, normalises by the statistics of the whole global batch.

    Each rank holds a slice of the global batch; a plain batch norm would normalise each slice by its own
    mean and variance, so the activations, the gradients and the running statistics would all depend on
    the world size (a 1 → 2 worker resize moved conv weights by 0.03 and running means by 0.26). Here the
    per-channel sums, sums of squares and counts are added over the ranks (an all-reduce that autograd
    follows, so the gradient is that of the global batch too), in float64 against cancellation. torch's
    ``SyncBatchNorm`` does the same on GPUs only; this one runs over gloo on CPUs as well.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or not (dist.is_available() and dist.is_initialized()):
            return super().forward(input)  # type: ignore[misc]
        from torch.distributed.nn.functional import all_reduce

        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        wide = input.double()
        count = torch.full((1,), input.numel() / channels, dtype=torch.float64)
        total = all_reduce(torch.cat([wide.sum(dims), (wide * wide).sum(dims), count]))
        n = total[-1]
        mean = total[:channels] / n
        var = (total[channels : 2 * channels] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            self._track(mean.detach(), var.detach() * n.detach() / max(float(n) - 1.0, 1.0))
        shape = [1, channels] + [1] * (input.dim() - 2)
        out = (wide - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1.0 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
        self.running_var.mul_(1.0 - momentum).add_(unbiased_var.to(self.running_var.dtype), alpha=momentum)


_SYNCED: dict[type, type] = {}


def sync_batch_norm(model: nn.Module) -> nn.Module:
    """Make every batch norm of ``model`` use global-batch statistics, in place.

    Each module keeps its parameters, buffers and state-dict keys, and stays an instance of its class
    (a subclass is swapped in), so checkpoints move between world sizes unchanged and export sees the
    same modules; in eval mode, or outside a process group, it is the plain batch norm.
    """
    for module in model.modules():
        cls = type(module)
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, _GlobalBatchStats):
            if cls not in _SYNCED:
                _SYNCED[cls] = type(f"GlobalBatch{cls.__name__}", (_GlobalBatchStats, cls), {})
            module.__class__ = _SYNCED[cls]
    return model


def shard(batch: torch.Tensor, world: World) -> torch.Tensor:
    return batch if not world.distributed else batch[world.rank :: world.size]


def any_rank(flag: bool, world: World) -> bool:
    """True on every rank when it is true on one (a SIGTERM seen by any process stops them all together)."""
    if not world.distributed:
        return flag
    value = torch.tensor([1 if flag else 0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def all_gather(value: Any, world: World) -> list[Any]:
    """``value`` of every rank, in rank order (a 1-element list in a single process)."""
    if not world.distributed:
        return [value]
    gathered: list[Any] = [None] * world.size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def leave(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
