"""Few-shot text classification: SetFit-style MiniLM vs TF-IDF + LR on the same K examples vs a full fine-tune.

For each dataset and each K, ``--draws`` random draws of K training examples per class (seeds 0..n-1,
the draw ``oar fewshot train --seed S`` makes). On each draw:

- ``fewshot``: oar's recipe (contrastive tuning of MiniLM on pairs of the examples, then a logistic
  regression head on the tuned embeddings): ``oar.fewshot.contrastive``, same code as ``train_fewshot``
  without the export;
- ``frozen``: the same head on the untuned MiniLM embeddings (what the contrastive step adds);
- ``tfidf``: TF-IDF + logistic regression on the same examples (word 1-2-grams for English, character
  1-2-grams for Chinese).

Once per dataset, ``full``: MiniLM + linear head fine-tuned end to end on the training split for
``--full-steps`` steps of 32 texts (lr 1e-4, warm-up 10%, linear decay: ``oar.pipelines.minilm``'s
settings), and TF-IDF + LR on the whole training split. For Chinese the tokenizer coverage is
measured too: the share of tokens that are [UNK] and the share of distinct CJK characters that
tokenise to [UNK]. All accuracies are on the first ``--test-limit`` texts of the test split (the
split is shuffled with a fixed seed, so that is a stratified-looking sample and the same for every model).

    python bench/fewshot.py                                   # defaults: both datasets, K 8 16 64, 5 draws
    python bench/fewshot.py --datasets rotten-tomatoes --shots 8 --draws 2 --test-limit 300
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from oar.data import load_builtin
from oar.fewshot.contrastive import FewShotRecipe, embed_texts, fit_head, predict, tune_encoder
from oar.fewshot.shots import draw_shots
from oar.models.minilm import MiniLMClassifier, MiniLMSentenceClassifier, minilm_tokenizer

ANALYZER = {"rotten-tomatoes": ("word", (1, 2)), "chnsenti": ("char", (1, 2))}


def tfidf_accuracy(dataset: str, train_x: list[str], train_y: np.ndarray, test_x: list[str], test_y) -> float:
    analyzer, ngrams = ANALYZER.get(dataset, ("word", (1, 2)))
    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True)
    model = LogisticRegression(C=10.0, max_iter=2000).fit(vectorizer.fit_transform(train_x), train_y)
    return float((model.predict(vectorizer.transform(test_x)) == test_y).mean())


def coverage(tokenizer, texts: list[str]) -> dict[str, float]:
    """Share of [UNK] among the tokens of ``texts``, and among their distinct CJK characters."""
    unk = tokenizer.token_to_id("[UNK]")
    tokens = [i for e in tokenizer.encode_batch(texts, add_special_tokens=False) for i in e.ids]
    chars = sorted({c for t in texts for c in t if "\u4e00" <= c <= "\u9fff"})
    unknown = [c for c in chars if tokenizer.encode(c, add_special_tokens=False).ids == [unk]]
    return {
        "unk_token_share": sum(i == unk for i in tokens) / max(1, len(tokens)),
        "cjk_chars": len(chars),
        "cjk_unk_share": len(unknown) / max(1, len(chars)),
    }


def full_fine_tune(data, tokenizer, steps: int, test_x, test_y, seed: int = 0) -> tuple[float, float]:
    """(test accuracy, seconds) of MiniLM + head trained end to end for ``steps`` batches of 32."""
    torch.manual_seed(seed)
    model = MiniLMClassifier(len(data.labels))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.train))[: steps * 32]
    ids = [e.ids for e in tokenizer.encode_batch([data.train.x[i] for i in order])]
    labels = torch.from_numpy(data.train.y[order])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup))
    )
    started = time.perf_counter()
    model.train()
    for step in range(math.ceil(len(ids) / 32)):
        rows = ids[step * 32 : (step + 1) * 32]
        width = max(len(r) for r in rows)
        batch = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        loss = torch.nn.functional.cross_entropy(model(batch), labels[step * 32 : (step + 1) * 32])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    seconds = time.perf_counter() - started
    model.eval()
    predicted = []
    with torch.no_grad():
        test_ids = [e.ids for e in tokenizer.encode_batch(test_x)]
        for start in range(0, len(test_ids), 64):
            rows = test_ids[start : start + 64]
            width = max(len(r) for r in rows)
            predicted.append(model(torch.tensor([r + [0] * (width - len(r)) for r in rows])).argmax(-1).numpy())
    return float((np.concatenate(predicted) == test_y).mean()), seconds


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["rotten-tomatoes", "chnsenti"])
    parser.add_argument("--shots", nargs="+", type=int, default=[8, 16, 64])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--first-draw", type=int, default=0, help="seed of the first draw (to extend a run)")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--max-pairs", type=int, default=640, help="0: no cap")
    parser.add_argument("--test-limit", type=int, default=1000)
    parser.add_argument("--full-steps", type=int, default=150, help="0: no full fine-tune")
    parser.add_argument("--out", type=Path, default=Path("fewshot-bench.json"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: no spinning on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    recipe = FewShotRecipe(iterations=args.iterations, max_pairs=args.max_pairs or None)
    tokenizer = minilm_tokenizer(recipe.max_tokens)
    results: dict = {"commit": commit, "args": {k: str(v) for k, v in vars(args).items()}, "datasets": {}}
    for name in args.datasets:
        data = load_builtin(name)
        test = data.test.head(args.test_limit)
        out: dict = {"test_texts": len(test), "rows": []}
        results["datasets"][name] = out
        if name == "chnsenti":
            out["coverage"] = coverage(tokenizer, list(data.train.x))
            print(name, "MiniLM tokenizer coverage:", out["coverage"], flush=True)
        pretrained = MiniLMSentenceClassifier(len(data.labels)).eval()
        frozen_test = embed_texts(pretrained, tokenizer, test.x)
        out["tfidf_full_train"] = tfidf_accuracy(name, data.train.x, data.train.y, test.x, test.y)
        for position, shots in enumerate(args.shots):
            if position == 1 and args.full_steps > 0:  # right after the first K: the comparison that matters most
                full_run(args, data, tokenizer, test, out, results)
            for seed in range(args.first_draw, args.first_draw + args.draws):
                ids = draw_shots(data, shots, seed)
                examples = data.train.take(ids)
                frozen = LogisticRegression(max_iter=1000).fit(
                    embed_texts(pretrained, tokenizer, examples.x), examples.y
                )
                row = {"shots": shots, "seed": seed}
                row["frozen"] = float((frozen.predict(frozen_test) == test.y).mean())
                row["tfidf"] = tfidf_accuracy(name, examples.x, examples.y, test.x, test.y)
                torch.manual_seed(seed)
                model = MiniLMSentenceClassifier(len(data.labels))
                token_rows = [e.ids for e in tokenizer.encode_batch(examples.x)]
                tuning = tune_encoder(model, token_rows, examples.y, recipe, seed)
                fit_head(model, embed_texts(model, tokenizer, examples.x), examples.y, recipe.head_c, len(data.labels))
                row["fewshot"] = float((predict(model, tokenizer, test.x) == test.y).mean())
                row["tune_seconds"] = tuning["tune_seconds"]
                row["pairs"] = tuning["pairs"]
                out["rows"].append(row)
                print(name, json.dumps(row), flush=True)
                args.out.write_text(json.dumps(results, indent=1))
        if "full" not in out and args.full_steps > 0:
            full_run(args, data, tokenizer, test, out, results)
    print_table(results)


def full_run(args: argparse.Namespace, data, tokenizer, test, out: dict, results: dict) -> None:
    accuracy, seconds = full_fine_tune(data, tokenizer, args.full_steps, test.x, test.y)
    texts = args.full_steps * 32
    out["full"] = {"accuracy": accuracy, "seconds": seconds, "steps": args.full_steps, "texts": texts}
    print(data.name, "full fine-tune:", out["full"], flush=True)
    args.out.write_text(json.dumps(results, indent=1))


def print_table(results: dict) -> None:
    print(f"\ncommit {results['commit']}\n")
    print("| dataset | K | few-shot MiniLM (SetFit-style) | frozen MiniLM + LR | TF-IDF + LR | draws |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, out in results["datasets"].items():
        for shots in sorted({r["shots"] for r in out["rows"]}):
            rows = [r for r in out["rows"] if r["shots"] == shots]
            cells = [summary([r[k] for r in rows]) for k in ("fewshot", "frozen", "tfidf")]
            print(f"| {name} | {shots} | {' | '.join(cells)} | {len(rows)} |")
        if "full" in out:
            full = out["full"]
            print(
                f"| {name} | full fine-tune ({full['steps']} steps x 32 = {full['texts']} texts, "
                f"{full['seconds']:.0f} s) | {full['accuracy']:.3f} | | TF-IDF + LR, whole train split: "
                f"{out['tfidf_full_train']:.3f} | 1 |"
            )


if __name__ == "__main__":
    main()
