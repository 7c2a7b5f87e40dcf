"""``TextEncoder`` must give exactly the tokenizer's ids, on real text and on anything else."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tokenizers import Tokenizer, processors

from oar.data import load_builtin
from oar.data.tokenizer import train_wordpiece
from oar.runtime.text_encoder import TextEncoder


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    texts = [str(t) for t in load_builtin("chnsenti").train.x[:3000]]
    texts += [str(t) for t in load_builtin("rotten-tomatoes").train.x[:1000]]
    return train_wordpiece(texts, vocab_size=3000)


def _texts() -> list[str]:
    texts = []
    for name in ("chnsenti", "thucnews-10k", "rotten-tomatoes"):
        texts += [str(t) for t in load_builtin(name).test.x[:700]]
    rng = random.Random(0)
    codes = [*range(0x20, 0x3100), *range(0x4E00, 0x4E80), *range(0xF900, 0xF920), *range(0xFF00, 0xFFF0)]
    pool = [chr(c) for c in codes]
    pool += ["\x00", "\ufffd", "\u0301", "\u3000", "\t", "\n", "😀", "\U00020000", "İ", "Σ"]
    texts += ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(2000)]
    hostile = ["[UNK]好", "好[PAD]", "   ", "x" * 300, "好" * 300, "é\u0301 天\u0301，\u0301", "3天后iPhone坏了!!"]
    return texts + hostile


def _reference(tokenizer: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encodings = tokenizer.encode_batch_fast(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    return ids, np.array([sum(e.attention_mask) for e in encodings])


def _assert_same(encoder: TextEncoder, tokenizer: Tokenizer, texts: list[str]) -> None:
    for start in range(0, len(texts), 64):
        batch = texts[start : start + 64]
        ids, lengths = encoder.encode(batch)
        expected_ids, expected_lengths = _reference(tokenizer, batch)
        np.testing.assert_array_equal(ids, expected_ids, err_msg=repr(batch))
        np.testing.assert_array_equal(lengths, expected_lengths)


def test_direct_path_gives_the_tokenizers_ids(tokenizer):
    encoder = TextEncoder(tokenizer)
    assert encoder.direct
    _assert_same(encoder, tokenizer, _texts())


def test_other_configurations_use_the_tokenizer_itself(tokenizer):
    other = Tokenizer.from_str(tokenizer.to_str())
    other.post_processor = processors.TemplateProcessing(single="[UNK] $A", special_tokens=[("[UNK]", 1)])
    encoder = TextEncoder(other)
    assert not encoder.direct
    _assert_same(encoder, other, _texts()[:200])
