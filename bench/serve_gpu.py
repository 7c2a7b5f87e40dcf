"""Serving on a GPU: req/s and p99 of the quickstart model and the MiniLM package, CPU vs CUDA, 64 connections.

For a machine with an NVIDIA GPU and the ``onnxruntime-gpu`` build. Trains both packages into a temporary
OAR_HOME (or uses ``--home`` holding ``--quickstart`` and ``--minilm``), then for each package starts
``oar serve --device cpu`` and ``oar serve --device cuda`` in turn and loads each with ``wrk`` (64
connections, ``--duration`` s after a warm-up), REST with the 512 mixed Chinese/English texts of
``bench/serve.py --texts`` (the MiniLM package's vocabulary is English; Chinese texts are out-of-vocabulary
input, which costs the model the same). A server that cannot start its CUDA provider exits with the reason,
which is printed instead of a figure.

    python bench/serve_gpu.py                                  # trains both (MiniLM: --minilm-train-limit texts)
    python bench/serve_gpu.py --home ~/.oar --quickstart chnsenti-cls --minilm rt-minilm --duration 20
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serve as bench  # bench/serve.py: the server wrapper, wrk runner and request bodies


def main() -> None:
    args = _parse_args()
    bench._ensure_tools()
    home = Path(args.home) if args.home else _train(args)
    env = {**os.environ, "OAR_HOME": str(home), "TOKENIZERS_PARALLELISM": "false"}
    import onnxruntime as ort

    print(f"ONNX Runtime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}", flush=True)
    rows = []
    for model in (args.quickstart, args.minilm):
        folder = Path(tempfile.mkdtemp(prefix="oar-bench-gpu-"))
        bodies = bench.Bodies(folder, model.partition(":")[0], bench.mixed_texts()).write()
        for device in ("cpu", "cuda"):
            load = argparse.Namespace(
                connections=args.connections,
                duration=args.duration,
                generator_warmup=args.warmup,
                load_core=args.load_core,
            )
            command = [sys.executable, "-m", "oar.cli.main", "serve", model, "--device", device]
            command += ["--max-batch-size", str(args.max_batch_size)]
            try:
                with bench._Server(command, args.server_cores, env) as server:
                    result = bench._wrk(f"{model} on {device}", server, load, bodies)
            except SystemExit as exc:  # the server refused (no CUDA provider, parity probe failed)
                print(f"{model} on {device}: server did not start: {str(exc)[-400:]}", flush=True)
                continue
            rows.append(result)
    print("\n| package, device | req/s | p50 ms | p99 ms | errors | server CPU µs/req |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r.name} | {r.rps:.0f} | {r.p50:.2f} | {r.p99:.2f} | {r.errors} | {r.cpu_us:.0f} |")


def _train(args: argparse.Namespace) -> Path:
    """Both packages, trained into a temporary OAR_HOME under the names the run then serves."""
    home = Path(tempfile.mkdtemp(prefix="oar-bench-gpu-home-"))
    os.environ["OAR_HOME"] = str(home)
    from oar.hub import Hub
    from oar.pipelines import TextClassifierRecipe, train_text_classifier
    from oar.pipelines.minilm import MiniLMRecipe, train_minilm_classifier
    from oar.train import TrainerConfig

    hub = Hub()
    print(f"training {args.quickstart} and {args.minilm} into {home} ...", flush=True)
    recipe = TextClassifierRecipe(limit=3000, trainer=TrainerConfig(epochs=1, patience=None))
    train_text_classifier("chnsenti", args.quickstart, recipe, hub, progress=False)
    minilm = MiniLMRecipe(train_limit=args.minilm_train_limit or None)
    train_minilm_classifier("rotten-tomatoes", args.minilm, minilm, hub=hub, progress=False)
    return home


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="OAR_HOME holding both packages (default: train them in a temporary home)")
    parser.add_argument("--quickstart", default="chnsenti-cls", help="the quickstart-sized TextCNN package")
    parser.add_argument("--minilm", default="rt-minilm", help="the MiniLM-L6 classifier package")
    parser.add_argument("--minilm-train-limit", type=int, default=2000, help="training texts for MiniLM (0: all)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="seconds of unmeasured load before each run")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--server-cores", default="0-7", help="taskset list for the server (a GPU host has more)")
    parser.add_argument("--load-core", default="8-11", help="taskset list for wrk")
    return parser.parse_args()


if __name__ == "__main__":
    main()
