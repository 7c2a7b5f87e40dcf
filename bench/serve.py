"""Serving benchmark: oar vs a plain FastAPI + uvicorn baseline, measured in the same run.

Each server is pinned to one core (``taskset``), the load generator to another;
REST load comes from ``wrk`` (a C generator, closed loop: fixed connections),
gRPC load from a ``grpc.aio`` client (Python: its own ceiling is printed).
It prints req/s, p50/p90/p99/max, errors, oar's server-side split (queue,
compute, batch size, from its /metrics) and oar's ratio to the baseline.

    python bench/serve.py                       # trains the quickstart-sized model in a temp OAR_HOME
    python bench/serve.py --home ~/.oar --model chnsenti-cls --duration 20 --connections 64
    python bench/serve.py --overload            # adds a run far past saturation with a small queue
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "这家酒店的服务很周到，房间也很干净，下次还会再来。",
    "质量太差了，用了两天就坏了，非常失望。",
    "物流很快，包装完好，性价比很高，值得购买。",
    "一般般吧，没有想象中的好。",
]


@dataclass
class Result:
    name: str
    rps: float
    p50: float
    p90: float
    p99: float
    max: float
    errors: int
    cpu_us: float = float("nan")  # server CPU time per answered request: robust on a shared, noisy machine
    note: str = ""


def main() -> None:
    args = _parse_args()
    _ensure_wrk()
    home = Path(args.home) if args.home else _train_model(args.model)
    env = {**os.environ, "OAR_HOME": str(home), "TOKENIZERS_PARALLELISM": "false"}
    package = _package_dir(home, args.model)
    body_lua = _write_lua(Path(tempfile.mkdtemp(prefix="oar-bench-")))
    server_core, load_core = str(args.server_core), str(args.load_core)
    results: list[Result] = []
    print(
        f"model {args.model} ({package}); server on core {server_core}, load on core {load_core}; "
        f"{args.connections} connections, {args.duration} s per run",
        flush=True,
    )

    for _ in range(args.repeat):  # alternate the servers so a burst of noise does not favour one
        with _Server(_oar_command(args), server_core, env) as oar:
            before = _scrape(oar.url)
            results.append(_wrk("oar REST", oar, args, body_lua, load_core))
            results[-1].note = _split(before, _scrape(oar.url))
            if not args.skip_grpc:
                results.append(_grpc_load("oar gRPC", oar, args, load_core, env))
        if not args.skip_baseline:
            baseline_cmd = [sys.executable, str(ROOT / "bench" / "serve_baseline.py"), str(package)]
            with _Server(baseline_cmd, server_core, env) as baseline:
                results.append(_wrk("FastAPI baseline", baseline, args, body_lua, load_core))
    if args.overload:
        overload_args = [*_oar_command(args), "--max-queue-size", str(args.overload_queue)]
        with _Server(overload_args, server_core, env) as oar:
            before = _scrape(oar.url)
            over = argparse.Namespace(**{**vars(args), "connections": args.connections * 4})
            results.append(_wrk(f"oar REST overload ({over.connections} conns)", oar, over, body_lua, load_core))
            results[-1].note = _split(before, _scrape(oar.url), admitted_p99=True)
    _print_table(results)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="OAR_HOME holding the model (default: train one in a temporary home)")
    parser.add_argument("--model", default="chnsenti-cls")
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="alternate oar and baseline runs this many times")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-grpc", action="store_true")
    parser.add_argument("--overload", action="store_true", help="also run 4x the connections against a small queue")
    parser.add_argument("--overload-queue", type=int, default=32)
    parser.add_argument("--serve-args", default="", help="extra `oar serve` flags, e.g. '--instances 1'")
    return parser.parse_args()


def _oar_command(args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "oar.cli.main", "serve", args.model, "--threads", "1", *args.serve_args.split()]


def _ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("installing wrk from Debian (apt-get install -y wrk)", flush=True)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)


def _train_model(name: str) -> Path:
    """The quickstart-sized model (3000 texts, one epoch), trained into a temporary OAR_HOME."""
    home = Path(tempfile.mkdtemp(prefix="oar-bench-home-"))
    os.environ["OAR_HOME"] = str(home)
    from oar.hub import Hub
    from oar.pipelines import TextClassifierRecipe, train_text_classifier
    from oar.train import TrainerConfig

    print(f"training {name} into {home} (3000 texts, 1 epoch) ...", flush=True)
    recipe = TextClassifierRecipe(limit=3000, trainer=TrainerConfig(epochs=1, patience=None))
    train_text_classifier("chnsenti", name, recipe, Hub(), progress=False)
    return home


def _package_dir(home: Path, model: str) -> Path:
    """``NAME`` (latest) or ``NAME:VERSION``."""
    os.environ["OAR_HOME"] = str(home)
    from oar.hub import Hub
    from oar.serve.repository import parse_model_spec

    return Hub().open_package(*parse_model_spec(model)).path


def _write_lua(folder: Path) -> Path:
    bodies = [
        orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [t]}]}).decode()
        for t in TEXTS
    ]
    lua = folder / "infer.lua"
    quoted = ",\n  ".join("[==[" + b + "]==]" for b in bodies)
    lua.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n  {quoted}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n",
        encoding="utf-8",
    )
    return lua


class _Server:
    def __init__(self, command: list[str], core: str, env: dict[str, str]) -> None:
        from oar.serve.process import free_port

        self.port, self.grpc_port = free_port(), free_port()
        extra = ["--port", str(self.port)]
        if "oar.cli.main" in command:
            extra += ["--grpc-port", str(self.grpc_port)]
        self.command = ["taskset", "-c", core, *command, *extra]
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> _Server:
        self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server failed: {self.process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise SystemExit("server did not become ready in 60 s")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _wrk(name: str, server: _Server, args: argparse.Namespace, lua: Path, core: str) -> Result:
    target = f"{server.url}/v2/models/{args.model.partition(':')[0]}/infer"
    base = [
        "taskset",
        "-c",
        core,
        "wrk",
        "-t1",
        f"-c{args.connections}",
        "-s",
        str(lua),
        "--latency",
        "--timeout",
        "5s",
    ]
    subprocess.run([*base, "-d2s", target], check=True, capture_output=True)  # warm-up
    cpu = server.cpu_seconds()
    out = subprocess.run([*base, f"-d{args.duration}s", target], check=True, capture_output=True, text=True).stdout
    cpu = server.cpu_seconds() - cpu
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", out, re.M)}
    latency_max = _ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    cpu_us = cpu / max(total, 1) * 1e6
    print(
        f"{name}: {rps:.0f} req/s, p50 {pct['50']:.2f} ms, p99 {pct['99']:.2f} ms, errors {errors}, "
        f"{cpu_us:.0f} CPU us/req",
        flush=True,
    )
    return Result(name, rps, pct["50"], pct["90"], pct["99"], latency_max, errors, cpu_us)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _grpc_load(name: str, server: _Server, args: argparse.Namespace, core: str, env: dict[str, str]) -> Result:
    """Runs this file's ``--grpc-client`` mode pinned to the load core; it prints one JSON line."""
    command = [
        "taskset",
        "-c",
        core,
        sys.executable,
        __file__,
        "--grpc-client",
        f"127.0.0.1:{server.grpc_port}",
        args.model.partition(":")[0],
        str(args.connections),
        str(args.duration),
    ]
    cpu = server.cpu_seconds()
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    cpu = server.cpu_seconds() - cpu
    stats = orjson.loads(out.strip().splitlines()[-1])
    answered = stats.pop("count")
    result = Result(
        name,
        **stats,
        cpu_us=cpu / max(answered, 1) * 1e6,
        note="Python grpc.aio load generator on one core: req/s may be its ceiling, not oar's",
    )
    print(f"{name}: {result.rps:.0f} req/s, p50 {result.p50:.2f} ms, p99 {result.p99:.2f} ms", flush=True)
    return result


def _grpc_client(address: str, model: str, concurrency: int, duration: float) -> None:
    import grpc

    from oar.protocol import grpc_service_pb2 as pb
    from oar.protocol import grpc_service_pb2_grpc as pb_grpc
    from oar.protocol.raw import to_raw

    requests = []
    for text in TEXTS:
        message = pb.ModelInferRequest(model_name=model)
        message.inputs.add(name="text", datatype="BYTES", shape=[1])
        message.raw_input_contents.append(to_raw(np.array([text.encode()], dtype=object), "BYTES"))
        requests.append(message)

    async def run() -> dict[str, float | int]:
        latencies: list[float] = []
        errors = 0
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for message in requests:  # warm-up
                await stub.ModelInfer(message)
            stop = time.perf_counter() + duration

            async def worker(i: int) -> None:
                nonlocal errors
                while time.perf_counter() < stop:
                    t0 = time.perf_counter()
                    try:
                        await stub.ModelInfer(requests[i % len(requests)])
                        latencies.append(time.perf_counter() - t0)
                    except grpc.aio.AioRpcError:
                        errors += 1
                    i += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(concurrency)))
            elapsed = time.perf_counter() - started
        ms = np.array(latencies) * 1000
        return {
            "count": len(ms),
            "rps": len(ms) / elapsed,
            "p50": float(np.percentile(ms, 50)),
            "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max()),
            "errors": errors,
        }

    import uvloop

    print(orjson.dumps(uvloop.run(run())).decode())


def _scrape(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"(\w+)(\{[^}]*\})?\s+([-\d.e+]+)$", line)
        if match and (match.group(1).endswith(("_sum", "_count", "_total")) or "_bucket" in match.group(1)):
            labels = re.sub(r'(model|version)="[^"]*",?', "", match.group(2) or "").replace(",}", "}")
            key = match.group(1) + labels.replace("{}", "")
            values[key] = values.get(key, 0.0) + float(match.group(3))
    return values


def _split(before: dict[str, float], after: dict[str, float], admitted_p99: bool = False) -> str:
    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests = delta("oar_queue_duration_seconds_count") or 1
    batches = delta("oar_compute_duration_seconds_count") or 1
    note = (
        f"server side: queue {delta('oar_queue_duration_seconds_sum') / requests * 1000:.2f} ms/req, "
        f"compute {delta('oar_compute_duration_seconds_sum') / batches * 1000:.2f} ms/batch, "
        f"batch {delta('oar_batch_size_sum') / batches:.1f} items"
    )
    if admitted_p99:
        note += f", admitted p99 <= {_histogram_p99(before, after, 'oar_request_duration_seconds') * 1000:.0f} ms"
        shed = delta('oar_inference_requests_total{outcome="failure"}')
        note += f", shed {shed:.0f}"
    return note


def _histogram_p99(before: dict[str, float], after: dict[str, float], name: str) -> float:
    buckets = sorted(
        (float(re.search(r'le="([^"]+)"', k).group(1)), after[k] - before.get(k, 0.0))  # type: ignore[union-attr]
        for k in after
        if k.startswith(f"{name}_bucket")
    )
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= 0.99 * total:
            return bound
    return float("nan")


def _print_table(results: list[Result]) -> None:
    print("\n| run | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU us/req |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.name} | {r.rps:.0f} | {r.p50:.2f} | {r.p90:.2f} | {r.p99:.2f} | {r.max:.1f} | {r.errors} "
            f"| {r.cpu_us:.0f} |"
        )
    for r in results:
        if r.note:
            print(f"- {r.name}: {r.note}")
    best = {}
    for r in results:  # with --repeat, each server's best run (noise only ever slows a run down)
        if r.name not in best or r.rps > best[r.name].rps:
            best[r.name] = r
    if "oar REST" in best and "FastAPI baseline" in best:
        oar, base = best["oar REST"], best["FastAPI baseline"]
        print(
            f"\noar REST / FastAPI baseline: {oar.rps / base.rps:.2f}x req/s (best runs), "
            f"{base.cpu_us / oar.cpu_us:.2f}x less server CPU per request"
        )
    if "oar REST" in best:
        rest = best["oar REST"]
        verdict = "met" if rest.rps >= 5000 and rest.p99 < 50 else "NOT met"
        print(f"target >= 5000 req/s at p99 < 50 ms: {verdict} ({rest.rps:.0f} req/s, p99 {rest.p99:.1f} ms)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--grpc-client":
        _grpc_client(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        main()
