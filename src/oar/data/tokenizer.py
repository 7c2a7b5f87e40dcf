"""Tokenizers trained on a dataset's training split, with the ``tokenizers`` library.

One normaliser for every language: BERT-style, which splits each CJK character
into its own token (character level for Chinese) and leaves WordPiece to cut
English words into sub-words. Id 0 is padding, id 1 unknown.
"""

from __future__ import annotations

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
    configure_for_inference(tokenizer)
    return tokenizer


def configure_for_inference(tokenizer: Tokenizer, max_tokens: int = MAX_TOKENS) -> Tokenizer:
    """Pad each batch to its longest member (not a fixed length) and cap very long inputs."""
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(PAD) or 0, pad_token=PAD)
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer
