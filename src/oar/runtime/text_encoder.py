"""Token ids for a batch of texts: the package's tokenizer, with a direct path for CJK characters.

oar's WordPiece tokenizers use BERT's normaliser, which puts spaces around every CJK character; the
pre-tokenizer then treats each character as a word of its own, with alignment bookkeeping per character.
On chnsenti's reviews (71 characters on average) that costs about 100 µs per text, more than the
server's whole front end per request (``bench/text_encoder.py``: 2.7x less with this class). In that
configuration a CJK ideograph or a punctuation mark is always exactly one token (its vocabulary id, else
``[UNK]``), so ``TextEncoder`` looks those up in a table and sends only the runs between them (Latin
words, digits, anything else) through the tokenizer, in one batched call. The table is built by asking
the tokenizer itself which characters behave that way, so the ids are the tokenizer's own (tested
against it on built-in texts and random Unicode). A tokenizer configured any other way is used as it is.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from tokenizers import Tokenizer

# Candidates for the table: CJK ideographs (BERT's main ranges) and punctuation blocks. Each is kept only
# if the tokenizer confirms it stands alone as one token.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF))
_CANDIDATE_RANGES = (*_CJK_RANGES, (0x21, 0x7E), (0x2000, 0x206F), (0x3000, 0x303F), (0xFF00, 0xFFEF))
_PROBE = "q"  # a letter glued to both sides of a candidate: if the candidate were not a word boundary, ids would differ


class TextEncoder:
    """``ids, lengths = encoder.encode(texts)``: padded [n, longest] int64 ids and each text's token count."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        spec = json.loads(tokenizer.to_str())
        self._table: dict[str, int] | None = None
        if _is_bert_wordpiece(spec):
            self._runs = Tokenizer.from_str(tokenizer.to_str())  # the same pipeline without padding/truncation
            self._runs.no_padding()
            self._runs.no_truncation()
            self._pad_id = int(spec["padding"]["pad_id"]) if spec["padding"] else 0
            self._max_tokens = int(spec["truncation"]["max_length"]) if spec["truncation"] else None
            self._table = self._confirmed_table()
            members = _char_class(self._table)
            self._pieces = re.compile(f"[{members}]|[^ {members}]+").findall
            # The tokenizer matches its added tokens ([PAD], [UNK]) in the raw text first: a text holding one
            # goes to it whole.
            self._added = [token["content"] for token in spec.get("added_tokens") or []]

    @property
    def direct(self) -> bool:
        """Whether CJK characters and punctuation skip the tokenizer (its configuration allows it)."""
        return self._table is not None

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if self._table is None:
            encodings = self.tokenizer.encode_batch_fast(list(texts))  # no offsets: ~20% less tokenising
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            return ids, np.array([sum(e.attention_mask) for e in encodings], dtype=np.int64)
        table = self._table
        rows: list[list[Any]] = [
            [text] if any(a in text for a in self._added) else [table.get(p, p) for p in self._pieces(text)]
            for text in texts
        ]
        runs = [piece for row in rows for piece in row if isinstance(piece, str)]
        if runs:
            encoded = iter(self._runs.encode_batch_fast(runs, add_special_tokens=False))
            rows = [_splice(row, encoded) if any(isinstance(p, str) for p in row) else row for row in rows]
        if self._max_tokens is not None:
            rows = [row[: self._max_tokens] for row in rows]
        return _pad(rows, self._pad_id)

    def _confirmed_table(self) -> dict[str, int]:
        """Each candidate character the tokenizer turns into exactly one token wherever it stands, with that id."""
        candidates = [
            chr(c)
            for low, high in _CANDIDATE_RANGES
            for c in range(low, high + 1)
            if _in(c, _CJK_RANGES) or unicodedata.category(chr(c)).startswith("P")
        ]
        probe = self._runs.encode(_PROBE, add_special_tokens=False).ids
        alone = self._runs.encode_batch_fast(candidates, add_special_tokens=False)
        glued = self._runs.encode_batch_fast([f"{_PROBE}{c}{_PROBE}" for c in candidates], add_special_tokens=False)
        return {
            c: a.ids[0]
            for c, a, g in zip(candidates, alone, glued, strict=True)
            if len(a.ids) == 1 and g.ids == [*probe, a.ids[0], *probe]
        }


def _is_bert_wordpiece(spec: dict[str, Any]) -> bool:
    """The configuration ``oar.data.tokenizer.train_wordpiece`` writes (any vocabulary), and nothing else."""
    normalizer, padding, truncation = spec.get("normalizer") or {}, spec.get("padding"), spec.get("truncation")
    return (
        normalizer.get("type") == "BertNormalizer"
        and normalizer.get("handle_chinese_chars") is True
        and normalizer.get("clean_text") is True
        and (spec.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
        and (spec.get("model") or {}).get("type") == "WordPiece"
        and spec.get("post_processor") is None
        and (padding is None or (padding["strategy"] == "BatchLongest" and padding["direction"] == "Right"))
        and (padding is None or padding.get("pad_to_multiple_of") is None)
        and (truncation is None or (truncation["direction"] == "Right" and truncation["stride"] == 0))
    )


def _splice(row: list[Any], encoded: Iterator[Any]) -> list[int]:
    out: list[int] = []
    for piece in row:
        if isinstance(piece, str):
            out.extend(next(encoded).ids)
        else:
            out.append(piece)
    return out


def _pad(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    width = int(lengths.max()) if len(rows) else 0
    if len(rows) and (lengths == width).all():
        return np.array(rows, dtype=np.int64).reshape(len(rows), width), lengths
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    return ids, lengths


def _in(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


def _char_class(chars: dict[str, int]) -> str:
    """The inside of a regex character class for ``chars``, consecutive code points written as ranges."""
    codes = sorted(ord(c) for c in chars)
    parts, start = [], None
    for i, code in enumerate(codes):
        if start is None:
            start = code
        if i + 1 == len(codes) or codes[i + 1] != code + 1:
            parts.append(re.escape(chr(start)) if start == code else f"{re.escape(chr(start))}-{re.escape(chr(code))}")
            start = None
    return "".join(parts)
