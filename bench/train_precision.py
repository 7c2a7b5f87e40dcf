"""Mixed precision vs float32 per training step, measured the way the Trainer's start-up probe does.

For the docs' example job (a small Transformer on chnsenti) and the memory benchmark's shape,
``probe_precision`` times forward + backward on one batch in ``bf16-mixed`` and in float32,
alternated, one warm-up round then medians, in one process: the ratio is what decides the
Trainer's fallback (over 1.25x slower: train in float32).

    python bench/train_precision.py [--threads 1]
"""

from __future__ import annotations

import argparse

import torch

from oar.data import load_builtin
from oar.data.tokenizer import train_wordpiece
from oar.models import TransformerClassifier
from oar.train import TextBatches
from oar.train.job import token_ids
from oar.train.precision import MAX_SLOWDOWN, Precision, probe_precision


def _docs_job_batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, str]:
    texts = load_builtin("chnsenti").train
    tokenizer = train_wordpiece(list(texts.x[:2000]), vocab_size=2000)
    tokenizer.enable_truncation(256)
    inputs, targets = next(iter(TextBatches(token_ids(tokenizer, texts.x[:2000]), texts.y[:2000], 32, shuffle=True)))
    model = TransformerClassifier(tokenizer.get_vocab_size(), 2, dim=64, depth=2, heads=2)
    return model, inputs, targets, f"docs example: text-transformer dim 64 depth 2, batch 32 x {inputs.shape[1]}"


def _memory_bench_batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, str]:
    model = TransformerClassifier(8000, 2, dim=256, depth=4, heads=4, max_len=256)
    return model, torch.randint(1, 8000, (64, 256)), torch.randint(0, 2, (64,)), "dim 256 depth 4, batch 64 x 256"


def _step(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(precision: Precision) -> None:
        with precision.autocast():
            loss = loss_fn(model(inputs), targets)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU capability {capability}")
    print("| setup | float32 step ms | bf16-mixed step ms | ratio | Trainer uses |")
    print("|---|---|---|---|---|")
    for build in (_docs_job_batch, _memory_bench_batch):
        model, inputs, targets, label = build()
        report = probe_precision("bf16-mixed", "cpu", _step(model, inputs, targets))
        ratio = report.mixed_step_ms / report.fp32_step_ms
        print(
            f"| {label} | {report.fp32_step_ms:.1f} | {report.mixed_step_ms:.1f} | {ratio:.2f}x "
            f"| {report.used} (falls back above {MAX_SLOWDOWN}x) |"
        )


if __name__ == "__main__":
    main()
