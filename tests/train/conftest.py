"""Small real data for the engine's tests: chnsenti texts tokenised once per session."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

TRAIN_TEXTS = 320
VALID_TEXTS = 120


@dataclass
class SmallText:
    train_ids: list[list[int]]
    train_y: np.ndarray
    valid_ids: list[list[int]]
    valid_y: np.ndarray
    vocab_size: int


@pytest.fixture(scope="session")
def small_text() -> SmallText:
    from oar.data import load_builtin
    from oar.data.tokenizer import train_wordpiece
    from oar.train.job import token_ids

    dataset = load_builtin("chnsenti")
    texts = list(dataset.train.x[:TRAIN_TEXTS])
    tokenizer = train_wordpiece(texts, vocab_size=1000)
    tokenizer.enable_truncation(64)
    return SmallText(
        token_ids(tokenizer, texts),
        dataset.train.y[:TRAIN_TEXTS],
        token_ids(tokenizer, dataset.valid.x[:VALID_TEXTS]),
        dataset.valid.y[:VALID_TEXTS],
        tokenizer.get_vocab_size(),
    )
