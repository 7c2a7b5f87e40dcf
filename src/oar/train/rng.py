"""Every random number generator a training step can touch, captured and restored.

Resume is bit-exact only if dropout masks, shuffles and augmentations after the
resume draw exactly what they would have drawn: Python's ``random``, NumPy's
global generator and torch's (CPU and, when present, CUDA) all go in a checkpoint.
States are stored as tensors and plain values so ``torch.load(weights_only=True)`` reads them.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch


def capture_rng() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of data-parallel rank ``rank``: rank 0 keeps ``seed``, so a 1-process run is unchanged.

    Every rank seeded alike would draw the same dropout masks for its slice of the batch: the
    ranks' noise would be perfectly correlated, unlike one process drawing for the whole batch.
    """
    if rank == 0:
        return seed
    digest = hashlib.sha256(f"oar-rank-seed:{seed}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def fresh_rank_rng(seed: int, rank: int, step: int) -> None:
    """Seed a rank that has no saved state (a resume at a larger world size) from ``(seed, rank, step)``."""
    digest = hashlib.sha256(f"oar-rank-resume:{seed}:{rank}:{step}".encode()).digest()
    seed_everything(int.from_bytes(digest[:8], "little") >> 1)
