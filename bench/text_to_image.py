"""Seconds per image of a text-to-image package, through oar's runtime (the code ``oar serve`` runs).

Two modes:

- default: the tiny random-weight pipeline the tests use (built here from configs, no download), on the CPU,
  at a few sizes and step counts. It measures oar's overhead around diffusers (prompt checks, a pipeline view
  per thread, the per-step stop check, PNG encoding) beside a bare diffusers call on the same pipeline, and
  says nothing about a real model's speed.
- ``--pipeline DIR --device cuda``: a user's own pipeline directory (e.g. a Stable Diffusion 1.5 save), imported
  into a throwaway hub, timed at 512x512 and 20 steps on the GPU (fp16), warm, median of ``--repeat`` runs.

    python bench/text_to_image.py
    python bench/text_to_image.py --pipeline ~/models/sd15 --device cuda --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "diffusion"))

CPU_CASES = [(32, 2), (32, 8), (64, 2), (64, 8)]  # (side in pixels, steps)


def _runtime(pipeline_dir: Path, home: Path, max_size: int):  # type: ignore[no-untyped-def]
    os.environ["OAR_HOME"] = str(home)
    from oar.hub import Hub
    from oar.importers.diffusers import PipelineImport, import_pipeline
    from oar.runtime import load_runtime

    hub = Hub()
    registered = import_pipeline(hub, PipelineImport(pipeline_dir, "bench-t2i", max_size=max_size, max_steps=100))
    return load_runtime(hub.open_package(registered.name, registered.version))


def _time(call, repeat: int) -> float:  # type: ignore[no-untyped-def]
    return _time_pair(call, None, repeat)[0]


def _time_pair(first, second, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Medians of ``first`` and ``second`` (if given), run in turns so that a busy machine slows both alike."""
    calls = [c for c in (first, second) if c is not None]
    for call in calls:
        call()  # warm: first-call allocations, kernel selection
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repeat):
        for call, times in zip(calls, samples, strict=True):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
    medians = [statistics.median(times) for times in samples]
    return medians[0], medians[-1]


def bench_cpu(repeat: int) -> None:
    import torch
    from tiny_pipeline import build_tiny_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        runtime = _runtime(build_tiny_pipeline(Path(tmp) / "tiny"), Path(tmp) / "home", 64)
        prompt = {"prompt": np.array([b"a red lighthouse on a cliff"], dtype=object)}
        bare = runtime._pipeline  # the same weights, called without oar around them
        print(f"tiny pipeline on CPU ({torch.get_num_threads()} threads), median of {repeat} warm runs")
        print(f"{'size':>7} {'steps':>5} {'oar s/image':>12} {'diffusers s/image':>18} {'ratio':>6}")
        for side, steps in CPU_CASES:
            request = runtime.parse(prompt, {"steps": steps, "width": side, "height": side, "seed": 0})
            ours, theirs = _time_pair(
                lambda r=request: runtime.generate(r, lambda: None),
                lambda s=side, n=steps: bare(
                    "a red lighthouse on a cliff",
                    num_inference_steps=n,
                    width=s,
                    height=s,
                    generator=torch.Generator().manual_seed(0),
                ),
                repeat,
            )
            print(f"{side:>3}x{side:<3} {steps:>5} {ours:>12.3f} {theirs:>18.3f} {ours / theirs:>6.2f}")


def bench_gpu(pipeline_dir: Path, repeat: int) -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    with tempfile.TemporaryDirectory() as tmp:
        runtime = _runtime(pipeline_dir, Path(tmp) / "home", 512)
        prompt = {"prompt": np.array([b"a lighthouse on a cliff at dusk, oil painting"], dtype=object)}
        request = runtime.parse(prompt, {"steps": 20, "width": 512, "height": 512, "seed": 0, "guidance": 7.5})

        def once() -> None:
            runtime.generate(request, lambda: None)
            torch.cuda.synchronize()

        seconds = _time(once, repeat)
        print(f"{torch.cuda.get_device_name()}: 512x512, 20 steps, fp16: {seconds:.3f} s/image (median of {repeat})")
        print(f"target < 2 s: {'met' if seconds < 2 else 'not met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=Path, help="a diffusers pipeline directory (GPU mode)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.device == "cuda":
        if args.pipeline is None:
            parser.error("--device cuda times a real pipeline: give --pipeline DIR")
        bench_gpu(args.pipeline, args.repeat)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the runtime takes a GPU when torch sees one
        bench_cpu(args.repeat)


if __name__ == "__main__":
    main()
