"""Training memory of the small Transformer: fp32 vs bf16-mixed vs bf16-mixed + recompute.

Each variant runs in a fresh process (so one's high-water mark cannot hide another's) and
reports: the bytes autograd keeps for backward (activations, counted exactly with
``saved_tensors_hooks``), the peak RSS growth over one training step above the process's
state after the model, optimizer and batch exist, and the step time. Ratios are to fp32.

    python bench/train_memory.py [--batch 64] [--seq 256] [--dim 256] [--depth 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

VARIANTS = [("fp32", "32", False), ("bf16-mixed", "bf16-mixed", False), ("bf16-mixed + recompute", "bf16-mixed", True)]


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)


def measure(precision: str, recompute: bool, batch: int, seq: int, dim: int, depth: int, threads: int) -> dict:
    import torch

    from oar.models import TransformerClassifier
    from oar.train.precision import make_precision
    from oar.train.recompute import apply_recompute

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TransformerClassifier(8000, 2, dim=dim, depth=depth, heads=4, max_len=seq)
    if recompute:
        apply_recompute(model, True)
    optimizer = torch.optim.AdamW(model.parameters())
    ids = torch.randint(1, 8000, (batch, seq))
    labels = torch.randint(0, 2, (batch,))
    amp = make_precision(precision, "cpu")

    def step(count_saved: bool) -> int:
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        with amp.autocast():
            if count_saved:
                with hooks:
                    loss = torch.nn.functional.cross_entropy(model(ids), labels)
            else:
                loss = torch.nn.functional.cross_entropy(model(ids), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return sum(saved.values())

    saved_bytes = step(count_saved=True)  # also creates the optimizer state
    before = _rss_kb()
    started = time.perf_counter()
    step(count_saved=False)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"saved_mb": saved_bytes / 2**20, "peak_growth_mb": (peak - before) / 1024, "step_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("PRECISION", "RECOMPUTE"))
    args = parser.parse_args()
    shape = (args.batch, args.seq, args.dim, args.depth, args.threads)
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1] == "1", *shape)))
        return
    results = []
    for label, precision, recompute in VARIANTS:
        command = [sys.executable, __file__, "--child", precision, "1" if recompute else "0"]
        command += [f"--{k}={v}" for k, v in zip(("batch", "seq", "dim", "depth", "threads"), shape, strict=True)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results.append((label, json.loads(out.strip().splitlines()[-1])))
    base = results[0][1]
    print(
        f"TransformerClassifier dim={args.dim} depth={args.depth}, batch {args.batch} x {args.seq} tokens, "
        f"{args.threads} thread(s), one fresh process per row"
    )
    print("| variant | saved activations MB | vs fp32 | peak RSS growth MB | vs fp32 | step s | vs fp32 |")
    print("|---|---|---|---|---|---|---|")
    for label, r in results:
        print(
            f"| {label} | {r['saved_mb']:.1f} | {r['saved_mb'] / base['saved_mb']:.2f}x "
            f"| {r['peak_growth_mb']:.1f} | {r['peak_growth_mb'] / base['peak_growth_mb']:.2f}x "
            f"| {r['step_s']:.2f} | {r['step_s'] / base['step_s']:.2f}x |"
        )


if __name__ == "__main__":
    main()
