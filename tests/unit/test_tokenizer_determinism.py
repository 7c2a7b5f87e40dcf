"""A trained WordPiece vocabulary is a pure function of the texts and settings, in any process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from oar.data.tokenizer import PAD, UNK, wordpiece_vocabulary

# The three cases seen to differ between processes when ties were broken by a hash.
_DIGESTS = """
import hashlib
from oar.data import load_builtin
from oar.data.tokenizer import train_wordpiece
for name, count, vocab in (("rotten-tomatoes", 800, 1000), ("rotten-tomatoes", 800, 8000), ("chnsenti", None, 8000)):
    texts = [str(t) for t in load_builtin(name).train.x[:count]]
    print(name, vocab, hashlib.sha256(train_wordpiece(texts, vocab_size=vocab).to_str().encode()).hexdigest())
"""


def _digests(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", _DIGESTS], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_two_processes_with_different_hash_seeds_train_the_same_tokenizers() -> None:
    first, second = _digests("1"), _digests("2")
    assert len(first.splitlines()) == 3
    assert first == second


def test_equal_counts_are_merged_in_token_order() -> None:
    # "ab" and "cd" tie at 3; "ab" sorts first, so a vocabulary with room for one merge takes it.
    counts = Counter({"ab": 3, "cd": 3})
    alphabet = {PAD, UNK, "a", "##b", "c", "##d"}
    vocab = wordpiece_vocabulary(counts, vocab_size=len(alphabet) + 1)
    assert set(vocab) == alphabet | {"ab"}
    assert vocab[PAD] == 0 and vocab[UNK] == 1
    assert list(vocab) == [PAD, UNK, *sorted(set(vocab) - {PAD, UNK})]


def test_more_frequent_pairs_win_and_rare_ones_are_never_merged() -> None:
    counts = Counter({"cd": 5, "ab": 3, "xy": 1})
    vocab = wordpiece_vocabulary(counts, vocab_size=100, min_frequency=2)
    assert {"cd", "ab"} <= set(vocab) and "xy" not in vocab
    only_one = wordpiece_vocabulary(counts, vocab_size=len(vocab) - 1, min_frequency=2)
    assert "cd" in only_one and "ab" not in only_one
