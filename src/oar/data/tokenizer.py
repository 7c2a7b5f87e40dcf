"""Tokenizers trained on a dataset's training split, with the ``tokenizers`` library.

One normaliser for every language: BERT-style, which splits each CJK character
into its own token (character level for Chinese) and leaves WordPiece to cut
English words into sub-words. Id 0 is padding, id 1 unknown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, UNK = "[PAD]", "[UNK]"
MAX_TOKENS = 256


def train_wordpiece(texts: Sequence[str], vocab_size: int = 8000, min_frequency: int = 2) -> Tokenizer:
    """Train a WordPiece tokenizer on ``texts`` (the training split only, never valid/test)."""
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK, max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, UNK], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return configure_for_inference(_canonical_ids(tokenizer))


def token_ids(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Unpadded ids per text, for training: padding belongs to each batch, not to the whole split."""
    return [e.ids[: sum(e.attention_mask)] for e in tokenizer.encode_batch(list(texts))]


def _canonical_ids(tokenizer: Tokenizer) -> Tokenizer:
    """Renumber the vocabulary in sorted order (special tokens keep ids 0 and 1).

    The WordPiece trainer orders tokens of equal frequency by a per-process hash, so two
    runs on the same texts would give the same tokens different ids; sorted ids make a
    training run a pure function of its inputs, so runs can be compared bit for bit.
    """
    spec = json.loads(tokenizer.to_str())
    vocab: dict[str, int] = spec["model"]["vocab"]
    ordered = [PAD, UNK, *sorted(t for t in vocab if t not in (PAD, UNK))]
    spec["model"]["vocab"] = {token: i for i, token in enumerate(ordered)}
    return Tokenizer.from_str(json.dumps(spec))


def configure_for_inference(tokenizer: Tokenizer, max_tokens: int = MAX_TOKENS) -> Tokenizer:
    """Pad each batch to its longest member (not a fixed length) and cap very long inputs."""
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(PAD) or 0, pad_token=PAD)
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer
