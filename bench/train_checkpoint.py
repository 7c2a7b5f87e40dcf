"""Checkpoint write and resume time, and the steps a SIGKILL costs.

Part 1 times ``Checkpoints.write`` (safetensors + state + fsync + SHA-256 + rename) and the
resume path (read, verify every checksum, load weights and optimizer state) for the small
Transformer and ResNet-18 with their AdamW state, next to a plain ``torch.save``/``torch.load``
of the same state dicts to a file on the same disk (no fsync, no checksum, not atomic), measured
in the same run as the baseline.
Part 2 starts real training processes (checkpoint every N steps), SIGKILLs each at a random
moment, and counts the steps done after the newest checkpoint on disk: the steps a resume redoes.

    python bench/train_checkpoint.py [--trials 5] [--every 10]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from oar.models import TransformerClassifier, resnet18
from oar.train.checkpoint import Checkpoints
from oar.train.rng import capture_rng

CHILD = textwrap.dedent(
    """
    import sys, torch
    from oar.data import load_builtin
    from oar.data.tokenizer import train_wordpiece
    from oar.models import TransformerClassifier
    from oar.train import Callback, CheckpointConfig, TextBatches, Trainer, TrainerConfig
    from oar.train.job import token_ids

    class StepFile(Callback):
        def on_step_end(self, trainer, record):
            with open(sys.argv[2], "w") as f:
                f.write(str(record["step"]))

    split = load_builtin("chnsenti").train
    tokenizer = train_wordpiece(list(split.x[:2000]), vocab_size=2000)
    tokenizer.enable_truncation(64)
    data = TextBatches(token_ids(tokenizer, split.x[:2000]), split.y[:2000], 32, shuffle=True)
    model = TransformerClassifier(tokenizer.get_vocab_size(), 2, dim=64, depth=2, max_len=64)
    config = TrainerConfig(epochs=50, log_every=1, patience=None, threads=1, eval_every=10**9,
                           checkpoint=CheckpointConfig(dir=sys.argv[1], every_steps=int(sys.argv[3])))
    Trainer(model, data, None, config, progress=False, callbacks=[StepFile()]).fit()
    """
)


def _state(model: torch.nn.Module) -> tuple[dict, dict]:
    optimizer = torch.optim.AdamW(model.parameters())
    model(*_example(model)).float().sum().backward()
    optimizer.step()
    return model.state_dict(), {"optimizer": optimizer.state_dict(), "rng": capture_rng()}


def _example(model: torch.nn.Module) -> tuple[torch.Tensor]:
    if isinstance(model, TransformerClassifier):
        return (torch.randint(1, 100, (4, 16)),)
    return (torch.randn(4, 1, 28, 28),)


def _time(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def write_and_resume(folder: Path) -> list[str]:
    models = {
        "transformer dim=128 depth=2": TransformerClassifier(8000, 2, dim=128, depth=2),
        "resnet18 width=64": resnet18(1, 10),
    }
    return [_one_model(folder / name.split()[0], name, model) for name, model in models.items()]


def _one_model(folder: Path, name: str, model: torch.nn.Module) -> str:
    weights, state = _state(model)
    store = Checkpoints(folder, keep_last=2)
    step = iter(range(1, 10**6))
    write = _time(lambda: store.write(next(step), {"model": weights}, state, {"epoch": 0}))

    def resume() -> None:
        checkpoint = store.latest()
        model.load_state_dict(checkpoint.weights())
        checkpoint.state()

    read = _time(resume)
    plain_path = folder / "plain.pt"
    plain_write = _time(lambda: torch.save({"model": weights, **state}, plain_path))
    plain_read = _time(lambda: torch.load(plain_path, weights_only=True))
    size = sum(p.stat().st_size for p in folder.glob("step-*/*")) / 2 / 2**20
    return (
        f"| {name} | {size:.1f} | {write * 1000:.0f} | {plain_write * 1000:.0f} | {write / plain_write:.1f}x "
        f"| {read * 1000:.0f} | {plain_read * 1000:.0f} | {read / plain_read:.1f}x |"
    )


def steps_lost(folder: Path, trials: int, every: int) -> list[int]:
    lost = []
    for trial in range(trials):
        checkpoints, step_file = folder / f"kill-{trial}", folder / f"kill-{trial}.step"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(checkpoints), str(step_file), str(every)],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        while not step_file.exists() and child.poll() is None:
            time.sleep(0.05)
        time.sleep(random.uniform(1.0, 4.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        done = int(step_file.read_text() or 0)
        newest = max((int(p.name[5:]) for p in checkpoints.glob("step-*") if p.name[5:].isdigit()), default=0)
        lost.append(done - newest)
    return lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_and_resume(Path(tmp))
        lost = steps_lost(Path(tmp), args.trials, args.every)
    print(
        "| model + AdamW state | checkpoint MB | write ms | plain torch.save ms | ratio | resume ms "
        "| plain torch.load ms | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(
        f"\nSIGKILL at random moments, checkpoint every {args.every} steps, {args.trials} trials: "
        f"steps redone on resume {lost} (mean {statistics.mean(lost):.1f}, max {max(lost)}, "
        f"bound {args.every - 1} = every_steps - 1)"
    )


if __name__ == "__main__":
    main()
