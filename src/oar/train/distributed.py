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
    if not world.distributed:
        return model
    return nn.parallel.DistributedDataParallel(model)


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
