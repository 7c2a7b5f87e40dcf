"""Padded batches of token ids, grouped by length so little compute goes to padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

_BUCKET_BATCHES = 50  # sort by length within windows of this many batches


class TextBatches:
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
        self.token_ids = [np.asarray(ids, dtype=np.int64) for ids in token_ids]
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.lengths = np.array([len(ids) for ids in self.token_ids])
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.token_ids) + self.batch_size - 1) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self._batch_indices():
            yield self._pad(idx), self.labels[idx]

    def _batch_indices(self) -> list[np.ndarray]:
        n = len(self.token_ids)
        if not self.shuffle:
            return [np.arange(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(n)
        window = self.batch_size * _BUCKET_BATCHES
        for s in range(0, n, window):
            chunk = order[s : s + window]
            order[s : s + window] = chunk[np.argsort(self.lengths[chunk], kind="stable")]
        batches = [order[s : s + self.batch_size] for s in range(0, n, self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def _pad(self, idx: np.ndarray) -> torch.Tensor:
        out = np.zeros((len(idx), max(1, int(self.lengths[idx].max()))), dtype=np.int64)
        for row, i in enumerate(idx):
            out[row, : self.lengths[i]] = self.token_ids[i]
        return torch.from_numpy(out)
