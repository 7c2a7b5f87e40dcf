"""Training memory of the small Transformer: fp32 vs bf16-mixed vs bf16-mixed + recompute.

Memory: each variant runs in a fresh process (no variant inherits another's allocator state)
and reports, over ``--steps`` measured steps after one warm-up step (which creates the
optimizer state):

- the bytes autograd keeps for backward (activations), counted exactly with ``saved_tensors_hooks``;
- the step's own peak of tensor memory: the PyTorch profiler's allocation events for that one
  forward + backward (``profile_memory=True``) carry the running total of bytes allocated since
  it began, so their maximum is the step's peak above what existed before it (weights,
  optimizer state). Warm-up or pages the allocator kept cannot hide or inflate it: it counts tensors, not
  the process's pages. The median over the measured steps is reported;
- the process's peak RSS above its RSS before the first step, sampled every millisecond by a
  thread during the steps (what the operating system saw; the allocator's caching shows here).

Time: one separate process builds all three variants and alternates their steps
(fp32, bf16, bf16+recompute, fp32, ...), so machine noise hits them alike; medians are reported.
Ratios are to fp32.

    python bench/train_memory.py [--steps 3] [--batch 64] [--seq 256] [--dim 256] [--depth 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

VARIANTS = [("fp32", "32", False), ("bf16-mixed", "bf16-mixed", False), ("bf16-mixed + recompute", "bf16-mixed", True)]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class RssSampler:
    """The highest RSS seen while entered, sampled every millisecond by a background thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.001)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def build(precision: str, recompute: bool, batch: int, seq: int, dim: int, depth: int):
    """A model, its optimizer, one fixed batch and a ``step(hooks=None)`` that trains on it."""
    import torch

    from oar.models import TransformerClassifier
    from oar.train.precision import make_precision
    from oar.train.recompute import apply_recompute

    torch.manual_seed(0)
    model = TransformerClassifier(8000, 2, dim=dim, depth=depth, heads=4, max_len=seq)
    if recompute:
        apply_recompute(model, True)
    optimizer = torch.optim.AdamW(model.parameters())
    ids = torch.randint(1, 8000, (batch, seq))
    labels = torch.randint(0, 2, (batch,))
    amp = make_precision(precision, "cpu")

    def forward_backward(hooks=None) -> None:
        with amp.autocast(), hooks or _nothing():
            loss = torch.nn.functional.cross_entropy(model(ids), labels)
        loss.backward()

    def update() -> None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return forward_backward, update


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _saved_bytes(forward_backward) -> int:
    import torch

    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    forward_backward(torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t))
    return sum(saved.values())


def _profiled_peak(forward_backward) -> int:
    """Peak bytes of tensors allocated during one forward + backward, from the profiler's allocation events.

    The optimizer update runs outside the profiled region: its temporaries are the same for every
    variant, and on small shapes they would be the peak and hide the activations' difference.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        forward_backward()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    return max(totals, default=0)


def measure_memory(precision: str, recompute: bool, steps: int, shape: tuple[int, ...], threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    forward_backward, update = build(precision, recompute, *shape)
    before = _rss_bytes()
    with RssSampler() as rss:
        saved = _saved_bytes(forward_backward)  # the warm-up step: its update creates the optimizer state
        update()
        peaks = []
        for _ in range(steps):
            peaks.append(_profiled_peak(forward_backward))
            update()
    return {
        "saved_mb": saved / 2**20,
        "peak_mb": statistics.median(peaks) / 2**20,
        "peaks_mb": [round(p / 2**20, 1) for p in peaks],
        "rss_peak_mb": (rss.peak - before) / 2**20,
    }


def measure_time(steps: int, shape: tuple[int, ...], threads: int) -> list[float]:
    """Median step seconds per variant, their steps alternated in one process after one warm-up each."""
    import torch

    torch.set_num_threads(threads)
    runs = [build(precision, recompute, *shape) for _, precision, recompute in VARIANTS]
    for forward_backward, update in runs:
        forward_backward()
        update()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(steps):
        for i, (forward_backward, update) in enumerate(runs):
            started = time.perf_counter()
            forward_backward()
            update()
            times[i].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times]


def _child(*args: str) -> dict | list:
    command = [sys.executable, __file__, *args]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="measured steps per variant (after one warm-up)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs="+", metavar="ARG")
    args = parser.parse_args()
    shape = (args.batch, args.seq, args.dim, args.depth)
    if args.child:
        if args.child[0] == "time":
            print(json.dumps(measure_time(args.steps, shape, args.threads)))
        else:
            print(json.dumps(measure_memory(args.child[0], args.child[1] == "1", args.steps, shape, args.threads)))
        return
    common = [f"--{k}={v}" for k, v in zip(("batch", "seq", "dim", "depth"), shape, strict=True)]
    common += [f"--steps={args.steps}", f"--threads={args.threads}"]
    memory = [_child("--child", precision, "1" if recompute else "0", *common) for _, precision, recompute in VARIANTS]
    seconds = _child("--child", "time", *common)
    base, base_s = memory[0], seconds[0]
    print(
        f"TransformerClassifier dim={args.dim} depth={args.depth}, batch {args.batch} x {args.seq} tokens, "
        f"{args.threads} thread(s); memory: one fresh process per row, {args.steps} measured steps after a "
        f"warm-up; time: one process, steps alternated, median of {args.steps}"
    )
    print(
        "| variant | saved activations MB | vs fp32 | forward+backward peak MB | vs fp32 | peak RSS MB | vs fp32 "
        "| step s | vs fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (label, _, _), r, s in zip(VARIANTS, memory, seconds, strict=True):
        print(
            f"| {label} | {r['saved_mb']:.1f} | {r['saved_mb'] / base['saved_mb']:.2f}x "
            f"| {r['peak_mb']:.1f} | {r['peak_mb'] / base['peak_mb']:.2f}x "
            f"| {r['rss_peak_mb']:.1f} | {r['rss_peak_mb'] / base['rss_peak_mb']:.2f}x "
            f"| {s:.2f} | {s / base_s:.2f}x |"
        )
    peaks = (f"{label} {r['peaks_mb']}" for (label, _, _), r in zip(VARIANTS, memory, strict=True))
    print("forward+backward peak of each measured step, MB: " + "; ".join(peaks))


if __name__ == "__main__":
    main()
