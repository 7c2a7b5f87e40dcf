"""Batch iterables that know where they are: the data position is part of a checkpoint.

Each epoch's order is a pure function of ``(seed, epoch)``, so resuming at batch
``k`` of epoch ``e`` recomputes that one order and starts at ``k``: O(1) in the
number of steps already done, never a replay of the batches before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

_BUCKET_BATCHES = 50  # sort by length within windows of this many batches


class StatefulBatches:
    """Base of oar's batch iterables: an epoch number and a position inside that epoch.

    ``position`` counts the batches already handed out in the current pass; the
    fit loop trains on a batch before asking for the next, so at a checkpoint it
    equals the batches trained on. Every new pass starts from the top (evaluation
    data is iterated many times) except the first after ``load_state_dict``.
    """

    def __init__(self, batch_size: int, shuffle: bool, seed: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._start = 0  # where the next pass begins: 0, or a restored position (used once)

    def __len__(self) -> int:
        return (self._size() + self.batch_size - 1) // self.batch_size

    @property
    def num_examples(self) -> int:
        return self._size()

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position, self._start = epoch, 0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "size": self._size()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Jump to a saved position; refuses a different dataset or seed, which would not be a resume."""
        if state.get("size", self._size()) != self._size() or state.get("seed", self.seed) != self.seed:
            raise ValueError(
                f"data position is for {state.get('size')} examples with seed {state.get('seed')}, "
                f"but this data has {self._size()} with seed {self.seed}"
            )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._start = self.position

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over the epoch, from a restored position if there is one, else from the top."""
        start, self._start = self._start, 0
        batches = self._batch_indices()
        for k in range(start, len(batches)):
            self.position = k + 1
            yield self._inputs(batches[k]), self._targets(batches[k])

    def _batch_indices(self) -> list[np.ndarray]:
        n = self._size()
        if not self.shuffle:
            return [np.arange(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]
        rng = np.random.default_rng(self.seed + self.epoch)
        order = self._order(rng.permutation(n))
        batches = [order[s : s + self.batch_size] for s in range(0, n, self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def _order(self, permutation: np.ndarray) -> np.ndarray:
        return permutation

    def _size(self) -> int:
        raise NotImplementedError

    def _inputs(self, idx: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def _targets(self, idx: np.ndarray) -> torch.Tensor:
        raise NotImplementedError


class TextBatches(StatefulBatches):
    """Yields ``(input_ids, labels)`` tensors; ``input_ids`` padded with 0 to the batch's longest text.

    With ``shuffle=True`` each epoch draws a new order from ``seed + epoch``, then sorts
    by length inside windows, so batches are both random and compact.
    """

    def __init__(
        self,
        token_ids: Sequence[Sequence[int]],
        labels: np.ndarray,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        if len(token_ids) != len(labels):
            raise ValueError(f"{len(token_ids)} texts but {len(labels)} labels")
        super().__init__(batch_size, shuffle, seed)
        self.token_ids = [np.asarray(ids, dtype=np.int64) for ids in token_ids]
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.lengths = np.array([len(ids) for ids in self.token_ids])

    def _size(self) -> int:
        return len(self.token_ids)

    def _order(self, permutation: np.ndarray) -> np.ndarray:
        window = self.batch_size * _BUCKET_BATCHES
        for s in range(0, len(permutation), window):
            chunk = permutation[s : s + window]
            permutation[s : s + window] = chunk[np.argsort(self.lengths[chunk], kind="stable")]
        return permutation

    def _inputs(self, idx: np.ndarray) -> torch.Tensor:
        out = np.zeros((len(idx), max(1, int(self.lengths[idx].max()))), dtype=np.int64)
        for row, i in enumerate(idx):
            out[row, : self.lengths[i]] = self.token_ids[i]
        return torch.from_numpy(out)

    def _targets(self, idx: np.ndarray) -> torch.Tensor:
        return self.labels[idx]


class TensorBatches(StatefulBatches):
    """Yields ``(x[idx], y[idx])`` from fixed-shape arrays, e.g. images ``[n, c, h, w]``."""

    def __init__(
        self,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} inputs but {len(y)} labels")
        super().__init__(batch_size, shuffle, seed)
        self.x = torch.as_tensor(np.asarray(x))
        self.y = torch.as_tensor(np.asarray(y, dtype=np.int64))

    def _size(self) -> int:
        return len(self.y)

    def _inputs(self, idx: np.ndarray) -> torch.Tensor:
        return self.x[torch.from_numpy(idx)]

    def _targets(self, idx: np.ndarray) -> torch.Tensor:
        return self.y[torch.from_numpy(idx)]
