"""Static (torch.compile) vs dynamic training: whole runs, compile included, as the Trainer decides.

For each model a dynamic run and a static run of ``--steps`` steps are timed end to end in
the same process (the static run's compile, probe and any recompiles included: that is what
the user waits for). The engine's probe times ``probe`` eager steps first and, with the
default ``--policy auto``, compiles only when the steps left could repay the expected compile
(see ``oar.train.graph``); ``--policy always`` compiles regardless, as static mode used to.
The table gives both runs' steps/s, their ratio, the probe's medians, the compile time
expected and paid, the mode kept and why.

    python bench/train_static.py [--steps 60] [--threads 1] [--models transformer,resnet18] [--policy auto]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from oar.data import load_builtin
from oar.data.tokenizer import train_wordpiece
from oar.models import TransformerClassifier, resnet18
from oar.train import TensorBatches, TextBatches, Trainer, TrainerConfig
from oar.train.job import token_ids


def _transformer_setup(batch: int):
    texts = load_builtin("chnsenti").train
    tokenizer = train_wordpiece(list(texts.x[:4000]), vocab_size=4000)
    tokenizer.enable_truncation(128)
    ids = token_ids(tokenizer, texts.x[:4000])
    data = TextBatches(ids, texts.y[:4000], batch, shuffle=True)
    return lambda: TransformerClassifier(tokenizer.get_vocab_size(), 2, dim=128, depth=2, heads=4, max_len=128), data


def _resnet_setup(batch: int):
    mnist = load_builtin("mnist-5k").train
    data = TensorBatches(np.asarray(mnist.x), mnist.y, batch, shuffle=True)
    return lambda: resnet18(1, 10, width=16), data


SETUPS = {"transformer": (_transformer_setup, 64), "resnet18": (_resnet_setup, 64)}


def _run(make, data, mode: str, steps: int, threads: int, probe: int, policy: str) -> tuple[float, dict]:
    torch.manual_seed(0)
    config = TrainerConfig(
        epochs=100,
        max_steps=steps,
        patience=None,
        threads=threads,
        eval_every=10**9,
        mode=mode,
        compile_probe_steps=probe,
        compile_policy=policy,
    )
    trainer = Trainer(make(), data, None, config, progress=False)
    started = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - started  # the whole run: compile and probe included
    return steps / seconds, result.graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--probe", type=int, default=5)
    parser.add_argument("--models", default="transformer,resnet18")
    parser.add_argument("--policy", default="auto", choices=("auto", "always"))
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        setup, batch = SETUPS[name]
        make, data = setup(batch)
        dynamic, _ = _run(make, data, "dynamic", args.steps, args.threads, args.probe, args.policy)
        static, graph = _run(make, data, "static", args.steps, args.threads, args.probe, args.policy)
        rows.append((name, batch, dynamic, static, graph))
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.steps} steps per run, policy {args.policy}")
    print(
        "| model | batch | dynamic steps/s | static run steps/s (compile included) | ratio | probe eager ms "
        "| probe compiled ms | compile s expected | compile s paid | kept | reason |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, batch, dynamic, static, g in rows:
        print(
            f"| {name} | {batch} | {dynamic:.2f} | {static:.2f} | {static / dynamic:.2f}x | {g['eager_step_ms']} "
            f"| {g['compiled_step_ms']} | {g['expected_compile_s']} | {g['compile_s']} | {g['used']} | {g['reason']} |"
        )


if __name__ == "__main__":
    main()
