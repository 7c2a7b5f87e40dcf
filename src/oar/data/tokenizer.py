"""Tokenizers trained on a dataset's training split, with the ``tokenizers`` library.

One normaliser for every language: BERT-style, which splits each CJK character
into its own token (character level for Chinese) and leaves WordPiece to cut
English words into sub-words. Id 0 is padding, id 1 unknown.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

PAD, UNK = "[PAD]", "[UNK]"
SUBWORD = "##"  # WordPiece's prefix of a piece that continues a word
MAX_TOKENS = 256
MAX_WORD_CHARS = 100  # longer words are one [UNK], as the WordPiece model treats them


def train_wordpiece(texts: Sequence[str], vocab_size: int = 8000, min_frequency: int = 2) -> Tokenizer:
    """Train a WordPiece tokenizer on ``texts`` (the training split only, never valid/test).

    The vocabulary is chosen here, not by ``tokenizers``' trainer: that trainer breaks ties between
    equally frequent pairs by a per-process hash, so the same texts gave different vocabularies in
    different processes. ``wordpiece_vocabulary`` merges pairs in a total order (count, then the
    merged token), so a training run stays a pure function of its inputs.
    """
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK, max_input_chars_per_word=MAX_WORD_CHARS))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts = word_counts(tokenizer, texts)
    vocab = wordpiece_vocabulary(counts, vocab_size, min_frequency)
    trained = Tokenizer(models.WordPiece(vocab=vocab, unk_token=UNK, max_input_chars_per_word=MAX_WORD_CHARS))
    trained.normalizer, trained.pre_tokenizer = tokenizer.normalizer, tokenizer.pre_tokenizer
    trained.decoder = decoders.WordPiece()
    return configure_for_inference(trained)


def word_counts(tokenizer: Tokenizer, texts: Iterable[str]) -> Counter[str]:
    """How often each word occurs, after the tokenizer's normaliser and pre-tokenizer."""
    normalizer, pre_tokenizer = tokenizer.normalizer, tokenizer.pre_tokenizer
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def wordpiece_vocabulary(counts: Counter[str], vocab_size: int, min_frequency: int = 2) -> dict[str, int]:
    """Special tokens, every character (alone and as ``##c``), then merged pieces until ``vocab_size``.

    Each round merges the adjacent pair seen most often over all words (weighted by the word's count);
    equal counts go to the smallest merged token, then the smallest pair, a total order that no hash
    or input order can change. Pairs seen fewer than ``min_frequency`` times are never merged. Ids are
    the sorted order of the tokens (``[PAD]`` 0, ``[UNK]`` 1).
    """
    words = [(w, c) for w, c in sorted(counts.items()) if len(w) <= MAX_WORD_CHARS]
    pieces = [[w[0], *(SUBWORD + ch for ch in w[1:])] for w, _ in words]
    tokens = {PAD, UNK, *(p for word in pieces for p in word)}
    pair_counts: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for index, word in enumerate(pieces):
        for pair in itertools.pairwise(word):
            pair_counts[pair] += words[index][1]
            where[pair].add(index)
    heap = [(-count, _merged(pair), pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    while heap and len(tokens) < vocab_size:
        negative, merged, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negative:
            continue  # stale: the count changed since it was pushed
        if -negative < min_frequency:
            break
        tokens.add(merged)
        changed: set[tuple[str, str]] = set()
        for index in sorted(where.pop(pair, ())):
            changed |= _merge_in_word(pieces, index, pair, merged, words[index][1], pair_counts, where)
        pair_counts.pop(pair, None)
        for other in changed - {pair}:
            if pair_counts.get(other, 0) > 0:
                heapq.heappush(heap, (-pair_counts[other], _merged(other), other))
    ordered = [PAD, UNK, *sorted(tokens - {PAD, UNK})]
    return {token: i for i, token in enumerate(ordered)}


def _merged(pair: tuple[str, str]) -> str:
    return pair[0] + pair[1].removeprefix(SUBWORD)


def _merge_in_word(
    pieces: list[list[str]],
    index: int,
    pair: tuple[str, str],
    merged: str,
    count: int,
    pair_counts: Counter[tuple[str, str]],
    where: dict[tuple[str, str], set[int]],
) -> set[tuple[str, str]]:
    """Replace ``pair`` by ``merged`` in one word, keeping the pair counts exact; the pairs touched."""
    old = pieces[index]
    new: list[str] = []
    i = 0
    while i < len(old):
        if i + 1 < len(old) and (old[i], old[i + 1]) == pair:
            new.append(merged)
            i += 2
        else:
            new.append(old[i])
            i += 1
    touched = set()
    for before in itertools.pairwise(old):
        pair_counts[before] -= count
        touched.add(before)
    for after in itertools.pairwise(new):
        pair_counts[after] += count
        where[after].add(index)
        touched.add(after)
    pieces[index] = new
    return touched


def token_ids(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Unpadded ids per text, for training: padding belongs to each batch, not to the whole split."""
    return [e.ids[: sum(e.attention_mask)] for e in tokenizer.encode_batch(list(texts))]


def configure_for_inference(tokenizer: Tokenizer, max_tokens: int = MAX_TOKENS) -> Tokenizer:
    """Pad each batch to its longest member (not a fixed length) and cap very long inputs."""
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(PAD) or 0, pad_token=PAD)
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer
