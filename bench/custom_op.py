"""The recommender with the fused custom op vs the same model from generic torch ops, in one run.

Single-request inference at batch 128 on one CPU core (the process is pinned to one core and
both runtimes use one thread): eager PyTorch (fused C++ kernel vs generic ops) and ONNX Runtime
(the ``oar.dlrm::BagInteract`` node with oar's ORT kernel vs the plain-ONNX generic graph). Both
models hold the same weights; both packages are written by ``export_module`` (parity-checked).
The four paths are timed interleaved, round after round, so a busy machine slows them alike:
compare the ratios; absolute times are only as good as the machine was quiet.

With ``--serve-seconds N`` (default 10; 0 skips it) both packages are then served by ``oar serve``
(``--model-dir``, one ONNX Runtime thread, the server pinned to ``--core``, ``wrk`` on the other core),
one server at a time, alternating for ``--serve-rounds``, shedding by queue length only: req/s at
``--connections`` (64) connections, each request ``--batch`` rows in the Open Inference Protocol's
binary tensor extension (``--json``: as JSON numbers).

    python bench/custom_op.py [--batch 128] [--rounds 30] [--calls 50] [--core 0] [--serve-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from oar.data.synthetic_ctr import criteo_like
from oar.export.module_package import export_module
from oar.export.onnx import InputSpec
from oar.models.dlrm import DLRM, ClickProbability
from oar.package import ModelPackage
from oar.runtime.custom_ops import op_libraries
from oar.runtime.session import create_session
from oar.serve.process import ServerProcess

GOAL_SPEEDUP, GOAL_P50_MS = 1.4, 0.8


def _models(cardinalities: tuple[int, ...]) -> tuple[ClickProbability, ClickProbability]:
    torch.manual_seed(0)
    fused = DLRM(cardinalities, fused=True)
    generic = DLRM(cardinalities, fused=False)
    generic.load_state_dict(fused.state_dict())
    return ClickProbability(fused).eval(), ClickProbability(generic).eval()


def _package(model: ClickProbability, root: Path, name: str, sample: tuple[torch.Tensor, ...]) -> ModelPackage:
    specs = [InputSpec([None, 13], "float32", "dense"), InputSpec([None, 26, 4], "int64", "ids", value_range=(-1, 2))]
    return export_module(
        model, specs, root / name, name=name, output_names=["click_probability"], sample_inputs=[sample]
    )


def _ort_call(package: ModelPackage, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
    session = create_session(package.file("model.onnx"), 1, 1, op_libraries(package))
    return lambda: session.run(None, feeds)


def _time(calls: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict[str, list[float]]:
    """Per-call seconds of every path, interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():
        for _ in range(20):
            fn()
    for _ in range(rounds):
        for name, fn in calls.items():
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=50, help="calls per path per round")
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--serve-seconds", type=int, default=10)
    parser.add_argument("--serve-rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", dest="binary", action="store_false", help="JSON numbers, not binary tensors")
    args = parser.parse_args()
    args.cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)

    data = criteo_like(args.batch * 4, seed=0)
    dense, ids = torch.from_numpy(data.dense[: args.batch]), torch.from_numpy(data.ids[: args.batch])
    fused, generic = _models(data.cardinalities)
    with tempfile.TemporaryDirectory() as tmp:
        fused_pkg = _package(fused, Path(tmp), "ctr-fused", (dense, ids))
        generic_pkg = _package(generic, Path(tmp), "ctr-generic", (dense, ids))
        feeds = {"dense": data.dense[: args.batch], "ids": data.ids[: args.batch]}
        ort_fused, ort_generic = _ort_call(fused_pkg, feeds), _ort_call(generic_pkg, feeds)
        np.testing.assert_allclose(ort_fused()[0], ort_generic()[0], atol=1e-5)  # type: ignore[index]

        def eager(model: ClickProbability) -> Callable[[], object]:
            def call() -> object:
                with torch.inference_mode():
                    return model(dense, ids)

            return call

        served = _serve_load(args, Path(tmp), [fused_pkg, generic_pkg], feeds) if args.serve_seconds else {}
        times = _time(
            {
                "eager generic": eager(generic),
                "eager fused": eager(fused),
                "onnxruntime generic": ort_generic,
                "onnxruntime fused": ort_fused,
            },
            args.rounds,
            args.calls,
        )
    p50 = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    print(f"batch {args.batch}, one core (core {args.core}), 1 thread; {args.rounds} rounds x {args.calls} calls")
    print(f"{'path':<22}{'p50 ms':>9}{'p90 ms':>9}")
    for name, t in times.items():
        print(f"{name:<22}{p50[name]:>9.3f}{np.percentile(t, 90) * 1e3:>9.3f}")
    eager_ratio = p50["eager generic"] / p50["eager fused"]
    ort_ratio = p50["onnxruntime generic"] / p50["onnxruntime fused"]
    print(f"fused vs generic, eager PyTorch: {eager_ratio:.2f}x; ONNX Runtime: {ort_ratio:.2f}x")
    if served:
        rates = {name: statistics.median(r) for name, r in served.items()}
        runs = ", ".join(f"{name}: {' / '.join(f'{x:.0f}' for x in r)}" for name, r in served.items())
        encoding = "binary tensors" if args.binary else "JSON"
        print(f"oar serve, {args.connections} connections, {args.batch} rows a request ({encoding}): req/s: {runs}")
        print(f"oar serve fused vs generic: {rates['ctr-fused'] / rates['ctr-generic']:.2f}x req/s (medians)")
    print(
        f"goal: >= {GOAL_SPEEDUP}x and p50 <= {GOAL_P50_MS} ms on the fused ONNX Runtime path: "
        f"{'met' if ort_ratio >= GOAL_SPEEDUP and p50['onnxruntime fused'] <= GOAL_P50_MS else 'NOT met'} "
        f"({ort_ratio:.2f}x, {p50['onnxruntime fused']:.3f} ms)"
    )


def _wrk_script(root: Path, feeds: dict[str, np.ndarray], binary: bool) -> Path:
    """A wrk script POSTing one inference request: JSON numbers, or the binary tensor extension."""
    datatype = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}
    tensors = [{"name": k, "datatype": datatype[v.dtype], "shape": list(v.shape)} for k, v in feeds.items()]
    if binary:
        for tensor, array in zip(tensors, feeds.values(), strict=True):
            tensor["parameters"] = {"binary_data_size": array.nbytes}
        header = json.dumps({"inputs": tensors}).encode()
        body = header + b"".join(np.ascontiguousarray(a).tobytes() for a in feeds.values())
        headers = f'wrk.headers["Inference-Header-Content-Length"] = "{len(header)}"\n'
        content_type = "application/octet-stream"
    else:
        for tensor, array in zip(tensors, feeds.values(), strict=True):
            tensor["data"] = array.ravel().tolist()
        body, headers, content_type = json.dumps({"inputs": tensors}).encode(), "", "application/json"
    (root / "body.bin").write_bytes(body)
    script = root / "body.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "{content_type}"\n{headers}'
        f'local f = io.open("{root / "body.bin"}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
    )
    return script


def _serve_load(
    args: argparse.Namespace, root: Path, packages: list[ModelPackage], feeds: dict[str, np.ndarray]
) -> dict[str, list[float]]:
    """req/s of ``oar serve`` for each package under wrk, one server at a time, alternating."""
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk): skipping the oar serve measurement")
        return {}
    repo = root / "repo"
    for package in packages:
        shutil.copytree(package.path, repo / package.manifest.name / "1")
    script = _wrk_script(root, feeds, args.binary)
    other_core = min(args.cores - {args.core} or {args.core})
    extra = ["--model-dir", str(repo), "--threads", "1", "--max-batch-size", str(args.batch)]
    extra += ["--max-queue-wait-us", "0"]  # shed by queue length only: measure throughput, not admission
    rates: dict[str, list[float]] = {p.manifest.name: [] for p in packages}
    for _ in range(args.serve_rounds):
        for package in packages:
            name = package.manifest.name
            with ServerProcess([name], extra_args=extra, grpc_port=0) as server:
                os.sched_setaffinity(server.process.pid, {args.core})  # type: ignore[union-attr]
                url = f"{server.endpoint}/v2/models/{name}/infer"
                load = ["taskset", "-c", str(other_core), "wrk", "-t1", f"-c{args.connections}"]
                subprocess.run([*load, "-d2s", "-s", str(script), url], capture_output=True, check=True)  # warm-up
                done = subprocess.run(
                    [*load, f"-d{args.serve_seconds}s", "-s", str(script), url],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                if "Non-2xx" in done.stdout:
                    raise SystemExit(f"{name}: errors under load:\n{done.stdout}")
                rates[name].append(float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1)))  # type: ignore[union-attr]
    return rates


if __name__ == "__main__":
    main()
