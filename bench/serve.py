"""Serving benchmark: oar vs a plain FastAPI + uvicorn baseline, measured in the same run.

Each server is pinned to one core (``taskset``), the load generator to another,
and the generators are C programs from Debian, so they are not the bottleneck:

- closed loop (default: fixed connections, each sending its next request when
  the last is answered): ``wrk`` for REST, ``h2load`` for gRPC (HTTP/2, one
  stream per connection);
- open loop (``--rate R``: requests start at R per second whatever the answers,
  connections staggered so arrivals are spread evenly): ``h2load --rps`` for
  both protocols.

Each round (``--repeat``) starts a fresh oar server, loads it over every
protocol for ``--warmup`` seconds, then measures REST and gRPC back to back in
alternating order (on a fresh server the second run measured came out faster,
whichever it was), then the baseline. It prints req/s, p50/p90/p99/max, errors,
oar's server-side split (queue, compute, batch size, from its /metrics), oar's
ratio to the baseline, and each serving target (``_print_targets``) with met / NOT met. gRPC against
REST is judged on ``--pairs`` back-to-back pairs of short runs on one more warm
server (the median of their ratios), with the per-round ratios shown beside it.

    python bench/serve.py                       # trains the quickstart-sized model in a temp OAR_HOME
    python bench/serve.py --home ~/.oar --model chnsenti-cls --duration 20 --connections 64 --overload
    python bench/serve.py --home ~/.oar --model chnsenti-cls --rate 3000   # open loop at 3000 req/s
    git worktree add ../oar-main-ref main
    python bench/serve.py --home ~/.oar --reference ../oar-main-ref --skip-grpc --pairs 0 --repeat 3

``--reference DIR`` runs a second oar checkout's server (same Python, ``DIR/src`` first on its path) in
the same rounds, order alternating, so old and new code are compared under the same noise. ``--overload``
measures admission by latency: closed loop at 4x the connections, then open loop at ``--overload-rates``
multiples of the sustainable rate (the best closed-loop REST req/s of the run), each reporting the admitted
requests' p99, how many were shed with 503, and the goodput. Every run also reports the server's RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import shutil
import statistics
import struct
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
# One review of median length (19 characters) for every load, so REST and gRPC do the same model work.
TEXT = "质量太差了，用了两天就坏了，非常失望。"
GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"


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
    rss_mib: float = float("nan")  # the server's resident memory at the end of the run
    shed: int = 0  # answered 503 (open loop)
    admitted_p99: float = float("nan")  # p99 of the 200s alone (open loop)
    goodput: float = float("nan")  # 200s per second (open loop)
    sustainable: float = float("nan")  # open loop: the closed-loop req/s its offered rate is a multiple of


def _infer_json(text: str) -> dict:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]}


def mixed_texts(count: int = 512) -> tuple[str, ...]:
    """``count`` test-split texts, half Chinese reviews (chnsenti), half English ones (rotten-tomatoes), interleaved."""
    from oar.data.builtin import load_chnsenti, load_rotten_tomatoes

    zh, en = load_chnsenti().test.x, load_rotten_tomatoes().test.x
    half = count // 2
    return tuple(text for pair in zip(zh[:half], en[:half], strict=True) for text in pair)


@dataclass(frozen=True)
class Bodies:
    """The same inference request in each wire format the load generators send."""

    folder: Path
    model: str
    texts: tuple[str, ...] = ()  # --texts: wrk sends these in turn instead of TEXT

    @property
    def rest_json(self) -> Path:
        return self.folder / "infer.json"

    @property
    def wrk_lua(self) -> Path:
        return self.folder / "infer.lua"

    @property
    def grpc(self) -> Path:
        return self.folder / "infer.grpc"

    def write(self) -> Bodies:
        body = orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [TEXT]}]})
        self.rest_json.write_bytes(body)
        lua = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        if self.texts:  # one request per text, in turn (each connection's thread shares the counter)
            bodies = [orjson.dumps(_infer_json(text)).decode() for text in self.texts]
            lua += "bodies = {" + ",".join(f"[==[{b}]==]" for b in bodies) + "}\ni = 0\n"
            lua += "request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n"
        else:
            lua += f"wrk.body = [==[{body.decode()}]==]\n"
        self.wrk_lua.write_text(lua, encoding="utf-8")
        from oar.protocol import grpc_service_pb2 as pb
        from oar.protocol.raw import to_raw

        message = pb.ModelInferRequest(model_name=self.model)
        message.inputs.add(name="text", datatype="BYTES", shape=[1])
        message.raw_input_contents.append(to_raw(np.array([TEXT.encode()], dtype=object), "BYTES"))
        data = message.SerializeToString()
        self.grpc.write_bytes(struct.pack(">BI", 0, len(data)) + data)  # gRPC length-prefixed message
        return self


def main() -> None:
    args = _parse_args()
    _ensure_tools()
    home = Path(args.home) if args.home else _train_model(args.model)
    env = {**os.environ, "OAR_HOME": str(home), "TOKENIZERS_PARALLELISM": "false"}
    package = _package_dir(home, args.model)
    texts = mixed_texts() if args.texts else ()
    bodies = Bodies(Path(tempfile.mkdtemp(prefix="oar-bench-")), args.model.partition(":")[0], texts).write()
    mode = f"open loop at {args.rate} req/s" if args.rate else f"closed loop, {args.connections} connections"
    print(
        f"model {args.model} ({package}); server on core {args.server_core}, load on core {args.load_core}; "
        f"{mode}, {args.duration} s per run",
        flush=True,
    )
    results: list[Result] = []
    pairs: list[tuple[Result, Result]] = []  # (REST, gRPC) measured on one server, one after the other
    reference_env = {**env, "PYTHONPATH": str(Path(args.reference).resolve() / "src")} if args.reference else None
    for round_ in range(args.repeat):  # alternate the servers so a burst of noise does not favour one
        codes = [("", env)] + ([(" (reference)", reference_env)] if reference_env else [])
        for suffix, code_env in codes[:: 1 if round_ % 2 == 0 else -1]:
            command = _oar_command(args) if suffix else [*_oar_command(args), *args.this_args.split()]
            with _Server(command, args.server_core, code_env) as oar:
                protocols = ["REST"] if args.skip_grpc else ["REST", "gRPC"][:: 1 if round_ % 2 == 0 else -1]
                _warm_up(protocols, oar, args, bodies)
                measured = {protocol: _oar_load(protocol, oar, args, bodies, suffix) for protocol in protocols}
                results += [measured[p] for p in ("REST", "gRPC") if p in measured]
                if "gRPC" in measured and not suffix:
                    pairs.append((measured["REST"], measured["gRPC"]))
        if not args.skip_baseline:
            baseline_cmd = [sys.executable, str(ROOT / "bench" / "serve_baseline.py"), str(package)]
            with _Server(baseline_cmd, args.server_core, env) as baseline:
                results.append(_rest_load("FastAPI baseline", baseline, args, bodies))
                results[-1].rss_mib = baseline.rss_mib()
    paired = _paired_ratios(args, env, bodies) if args.pairs and not (args.skip_grpc or args.rate) else []
    overload = None
    open_loop: list[Result] = []
    if args.overload:
        sustainable = max((r.rps for r in results if r.name == "oar REST"), default=0.0)
        for suffix, code_env in [("", env)] + ([(" (reference)", reference_env)] if reference_env else []):
            over_result, stats = _overload(args, code_env, bodies, sustainable, suffix, open_loop)
            results.append(over_result)
            overload = overload or stats
    _print_table(results)
    _print_open_loop(open_loop)
    _print_targets(results, pairs, paired, overload, args, open_loop)


def _overload(
    args: argparse.Namespace,
    env: dict[str, str],
    bodies: Bodies,
    sustainable: float,
    suffix: str,
    open_loop: list[Result],
) -> tuple[Result, tuple[float, float, bool]]:
    """Closed loop at 4x the connections, then open loop at each ``--overload-rates`` multiple of ``sustainable``
    (the same offered rates for this checkout and the reference)."""
    extra = [] if suffix else args.overload_args.split()  # this checkout's flags: the reference may lack them
    with _Server([*_oar_command(args), *extra], args.server_core, env) as oar:
        _warm_up(["REST"], oar, args, bodies)
        before = _scrape(oar.url)
        over = argparse.Namespace(**{**vars(args), "connections": args.connections * 4, "rate": 0})
        result = _rest_load(f"oar REST overload ({over.connections} conns){suffix}", oar, over, bodies)
        after = _scrape(oar.url)
        result.note = _split(before, after)
        result.rss_mib = oar.rss_mib()
        stats = (
            _histogram_p99(before, after, "oar_request_duration_seconds") * 1000,
            _delta(before, after, _FAILURES),
            oar.alive(),
        )
        for multiple in [float(m) for m in args.overload_rates.split(",") if m] if sustainable else []:
            rate = int(sustainable * multiple)
            name = f"oar REST open loop {multiple:g}x ({rate} req/s offered){suffix}"
            load = {"rate": rate, "connections": args.overload_connections, "generator_warmup": 0}
            open_loop.append(_h2load(name, oar, argparse.Namespace(**{**vars(args), **load}), bodies, grpc=False))
            open_loop[-1].rss_mib = oar.rss_mib()
            open_loop[-1].sustainable = sustainable
    return result, stats


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="OAR_HOME holding the model (default: train one in a temporary home)")
    parser.add_argument("--model", default="chnsenti-cls", help="NAME or NAME:VERSION")
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=int, default=0, help="open loop: requests per second (0: closed loop)")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="alternate oar and baseline runs this many times")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-grpc", action="store_true")
    parser.add_argument(
        "--overload", action="store_true", help="also run 4x the connections, and open loop past the sustainable rate"
    )
    parser.add_argument("--overload-rates", default="2,4,8", help="open-loop multiples of the sustainable rate")
    parser.add_argument("--overload-connections", type=int, default=512, help="h2load connections, open loop")
    parser.add_argument("--overload-args", default="", help="this checkout's extra `oar serve` flags, overload")
    parser.add_argument("--reference", help="a second oar checkout (e.g. a worktree of main) measured beside this one")
    parser.add_argument(
        "--this-args", default="", help="`oar serve` flags for this checkout only (ones the reference lacks)"
    )
    parser.add_argument(
        "--rest-generator",
        choices=["wrk", "h2load"],
        default="wrk",
        help="closed-loop REST load: wrk, or h2load --h1 (the generator gRPC uses, for a like-for-like comparison)",
    )
    parser.add_argument("--warmup", type=int, default=8, help="seconds of load per protocol on each fresh server")
    parser.add_argument(
        "--generator-warmup", type=int, default=2, help="seconds each load generator runs unmeasured before its run"
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=20,
        help="gRPC vs REST: this many back-to-back pairs of short runs on one server (0: skip; closed loop only)",
    )
    parser.add_argument("--pair-seconds", type=int, default=2)
    parser.add_argument(
        "--texts",
        action="store_true",
        help="closed-loop REST (wrk) sends 512 mixed Chinese/English test texts in turn instead of one review",
    )
    parser.add_argument("--serve-args", default="", help="extra `oar serve` flags, e.g. '--instances 1'")
    return parser.parse_args()


def _oar_command(args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "oar.cli.main", "serve", args.model, "--threads", "1", *args.serve_args.split()]


def _ensure_tools() -> None:
    """wrk and h2load (Debian's nghttp2-client), installed on first use."""
    missing = [package for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")) if not shutil.which(tool)]
    if not missing:
        return
    print(f"installing {' '.join(missing)} from Debian (apt-get install -y)", flush=True)
    if subprocess.run(["apt-get", "install", "-y", *missing], check=False, capture_output=True).returncode:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", *missing], check=True, capture_output=True)


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


class _Server:
    def __init__(self, command: list[str], core: int, env: dict[str, str]) -> None:
        from oar.serve.process import free_port

        self.port, self.grpc_port = free_port(), free_port()
        extra = ["--port", str(self.port)]
        if "oar.cli.main" in command:
            extra += ["--grpc-port", str(self.grpc_port)]
        self.command = ["taskset", "-c", str(core), *command, *extra]
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> _Server:
        self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 180  # a loaded machine (and a checkout that imports torch) is slow to start
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server failed: {self.process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise SystemExit("server did not become ready in 180 s")

    def alive(self) -> bool:
        try:
            return self.process.poll() is None and httpx.get(f"{self.url}/v2/health/live", timeout=5).is_success
        except httpx.TransportError:
            return False

    def rss_mib(self) -> float:
        """The server process's resident set size now (VmRSS), in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

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


def _oar_load(protocol: str, server: _Server, args: argparse.Namespace, bodies: Bodies, suffix: str = "") -> Result:
    """One run against oar over ``protocol``, with the server-side split from its metrics."""
    before = _scrape(server.url)
    if protocol == "REST":
        result = _rest_load(f"oar REST{suffix}", server, args, bodies)
    else:
        result = _h2load(f"oar gRPC{suffix}", server, args, bodies, grpc=True)
    after = _scrape(server.url)
    result.note = _split(before, after)
    result.rss_mib = server.rss_mib()
    if protocol == "gRPC":  # gRPC errors ride on HTTP 200s (streams h2load resets at the end count as "cancelled")
        result.errors += int(_delta(before, after, _FAILURES))
    return result


def _paired_ratios(args: argparse.Namespace, env: dict[str, str], bodies: Bodies) -> list[float]:
    """gRPC / REST req/s over ``--pairs`` back-to-back pairs of ``--pair-seconds`` runs on one warm server.

    This VM's speed drifts by ±15 % over tens of seconds, more than the difference between the protocols,
    so 20 s rounds minutes apart scatter around it. Runs a few seconds apart share the same drift: the
    median of many such pairs (order alternating, to cancel any order effect) is the steadier comparison.
    """
    short = argparse.Namespace(**{**vars(args), "duration": args.pair_seconds, "generator_warmup": 0})
    ratios = []
    with _Server(_oar_command(args), args.server_core, env) as oar:
        _warm_up(["REST", "gRPC"], oar, args, bodies)
        with contextlib.redirect_stdout(io.StringIO()):
            for i in range(args.pairs):
                order = ["REST", "gRPC"][:: 1 if i % 2 == 0 else -1]
                measured = {protocol: _oar_load(protocol, oar, short, bodies) for protocol in order}
                ratios.append(measured["gRPC"].rps / measured["REST"].rps)
    print(
        f"gRPC / REST over {len(ratios)} pairs of {args.pair_seconds} s runs: " + ", ".join(f"{r:.2f}" for r in ratios)
    )
    return ratios


def _warm_up(protocols: list[str], server: _Server, args: argparse.Namespace, bodies: Bodies) -> None:
    """Load a fresh server over every protocol before measuring, so the first measured run is not its warm-up.

    Without this the second run on a server came out 1-10 % faster than the first whichever protocol it
    was (allocator and ONNX Runtime arenas growing, caches), which biased a fixed REST-then-gRPC order.
    """
    if args.warmup > 0:
        warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
        with contextlib.redirect_stdout(io.StringIO()):  # not a measurement: keep it out of the report
            for protocol in protocols:
                _oar_load(protocol, server, warm, bodies)


def _rest_load(name: str, server: _Server, args: argparse.Namespace, bodies: Bodies) -> Result:
    via_h2load = args.rate or args.rest_generator == "h2load"
    return _h2load(name, server, args, bodies, grpc=False) if via_h2load else _wrk(name, server, args, bodies)


def _wrk(name: str, server: _Server, args: argparse.Namespace, bodies: Bodies) -> Result:
    target = f"{server.url}/v2/models/{bodies.model}/infer"
    base = ["taskset", "-c", str(args.load_core), "wrk", "-t1", f"-c{args.connections}", "-s", str(bodies.wrk_lua)]
    base += ["--latency", "--timeout", "5s"]
    if args.generator_warmup:
        subprocess.run([*base, f"-d{args.generator_warmup}s", target], check=True, capture_output=True)
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
    result = Result(name, rps, pct["50"], pct["90"], pct["99"], latency_max, errors, cpu / max(total, 1) * 1e6)
    result.goodput = rps * (total - errors) / max(total, 1)  # wrk's req/s counts 503s too
    _report(result)
    return result


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _h2load(name: str, server: _Server, args: argparse.Namespace, bodies: Bodies, grpc: bool) -> Result:
    """h2load over HTTP/2 (gRPC) or HTTP/1.1 (REST); closed loop, or open loop at ``args.rate``.

    Latency percentiles come from h2load's per-request log (start time, status, microseconds).
    """
    if grpc:
        url = f"http://127.0.0.1:{server.grpc_port}{GRPC_PATH}"
        protocol = ["-d", str(bodies.grpc), "-H", "content-type: application/grpc", "-H", "te: trailers", "-m", "1"]
    else:
        url = f"{server.url}/v2/models/{bodies.model}/infer"
        protocol = ["--h1", "-d", str(bodies.rest_json), "-H", "content-type: application/json"]
    if args.rate:  # each connection sends rate/connections req/s; connections start staggered over one period
        per_ms = max(1, math.ceil(args.rate / 1000))
        load = [f"--rps={args.rate / args.connections}", "-n", str(args.rate * args.duration)]
        load += ["-r", str(per_ms), "--rate-period=1ms"]
    else:
        load = ["-D", str(args.duration)]
    command = ["taskset", "-c", str(args.load_core), "h2load", "-t1", "-c", str(args.connections), *protocol]
    if args.generator_warmup:
        warm_up = [*command, "-D", str(args.generator_warmup), url]
        subprocess.run(warm_up, check=True, capture_output=True, timeout=args.generator_warmup + 60)
    command += load
    with tempfile.TemporaryDirectory(prefix="oar-h2load-") as folder:
        log = Path(folder) / "requests.tsv"
        cpu = server.cpu_seconds()
        out = subprocess.run(
            [*command, f"--log-file={log}", url],
            check=True,
            capture_output=True,
            text=True,
            timeout=args.duration * 3 + 60,
        ).stdout
        cpu = server.cpu_seconds() - cpu
        rows = np.loadtxt(log, ndmin=2)
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    errors = int(done.group(1)) - int(done.group(2))  # type: ignore[union-attr]
    ms = rows[:, 2] / 1000 if len(rows) else np.array([float("nan")])
    errors += int((rows[:, 1] >= 300).sum()) if len(rows) else 0
    ok = ms[rows[:, 1] == 200] if len(rows) else np.array([])
    shed = int((rows[:, 1] == 503).sum()) if len(rows) else 0
    span = (rows[:, 0].max() - rows[:, 0].min()) / 1e6 if len(rows) > 1 else float("nan")  # start times, us
    result = Result(
        name,
        rps,
        *(float(np.percentile(ms, p)) for p in (50, 90, 99)),
        max=float(ms.max()),
        errors=errors,
        cpu_us=cpu / max(len(rows), 1) * 1e6,
        shed=shed,
        admitted_p99=float(np.percentile(ok, 99)) if len(ok) else float("nan"),
        goodput=len(ok) / span if span else float("nan"),
    )
    _report(result)
    return result


def _report(r: Result) -> None:
    print(
        f"{r.name}: {r.rps:.0f} req/s, p50 {r.p50:.2f} ms, p99 {r.p99:.2f} ms, errors {r.errors}, "
        f"{r.cpu_us:.0f} CPU us/req",
        flush=True,
    )


_FAILURES = 'oar_inference_requests_total{outcome="failure"}'


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


def _delta(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def _split(before: dict[str, float], after: dict[str, float]) -> str:
    requests = _delta(before, after, "oar_queue_duration_seconds_count") or 1
    batches = _delta(before, after, "oar_compute_duration_seconds_count") or 1
    return (
        f"server side: queue {_delta(before, after, 'oar_queue_duration_seconds_sum') / requests * 1000:.2f} ms/req, "
        f"compute {_delta(before, after, 'oar_compute_duration_seconds_sum') / batches * 1000:.2f} ms/batch, "
        f"batch {_delta(before, after, 'oar_batch_size_sum') / batches:.1f} items, "
        f"failed {_delta(before, after, _FAILURES):.0f}"
    )


def _histogram_p99(before: dict[str, float], after: dict[str, float], name: str) -> float:
    """The upper bound of the histogram bucket holding the 99th percentile (an upper bound on p99)."""
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
    print("\n| run | req/s | 2xx/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU us/req | server RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.name} | {r.rps:.0f} | {r.goodput:.0f} | {r.p50:.2f} | {r.p90:.2f} | {r.p99:.2f} | {r.max:.1f} "
            f"| {r.errors} | {r.cpu_us:.0f} | {r.rss_mib:.0f} |"
        )
    for r in results:
        if r.note:
            print(f"- {r.name}: {r.note}")


def _print_open_loop(runs: list[Result]) -> None:
    if not runs:
        return
    print(
        "\n| open loop past the sustainable rate | answered req/s | goodput (200/s) | admitted p99 ms | shed (503) "
        "| other errors | server RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r.name} | {r.rps:.0f} | {r.goodput:.0f} | {r.admitted_p99:.1f} | {r.shed} | {r.errors - r.shed} "
            f"| {r.rss_mib:.0f} |"
        )


def _print_targets(
    results: list[Result],
    pairs: list[tuple[Result, Result]],
    paired: list[float],
    overload: tuple[float, float, bool] | None,
    args: argparse.Namespace,
    open_loop: list[Result] = (),  # type: ignore[assignment]
) -> None:
    best: dict[str, Result] = {}
    for r in results:  # with --repeat, each server's best run (noise only ever slows a run down)
        if r.name not in best or r.rps > best[r.name].rps:
            best[r.name] = r
    rows: list[tuple[str, bool, str]] = []
    rest, grpc, base = best.get("oar REST"), best.get("oar gRPC"), best.get("FastAPI baseline")
    if rest and not args.rate:
        rows.append(
            (
                "REST >= 5000 req/s at p99 < 50 ms (quickstart model)",
                rest.rps >= 5000 and rest.p99 < 50,
                f"{rest.rps:.0f} req/s, p99 {rest.p99:.1f} ms",
            )
        )
    if rest and base and not args.rate:
        ratio = rest.rps / base.rps
        rows.append(
            (
                "REST >= 2x the baseline at p99 < 50 ms",
                ratio >= 2 and rest.p99 < 50,
                f"{ratio:.2f}x ({rest.rps:.0f} vs {base.rps:.0f} req/s), "
                f"{base.cpu_us / rest.cpu_us:.2f}x less server CPU per request",
            )
        )
    if pairs and not args.rate:  # open loop: both carry the offered rate; compare latency instead
        # Each round measures both protocols on one server in alternating order; with --pairs, many short
        # back-to-back pairs decide (see _paired_ratios), and the rounds are reported beside them.
        ratios = [g.rps / r.rps for r, g in pairs]
        rounds = f"{statistics.median(ratios):.2f}x over {len(ratios)} rounds ({', '.join(f'{x:.2f}' for x in ratios)})"
        best_runs = f"best runs: gRPC {grpc.rps:.0f} vs REST {rest.rps:.0f} req/s"
        if paired:
            median = statistics.median(paired)
            target = f"gRPC req/s >= REST req/s (median of {len(paired)} paired {args.pair_seconds} s runs)"
            rows.append(
                (target, median >= 1, f"{median:.2f}x paired; per round of {args.duration} s: {rounds}; {best_runs}")
            )
        else:
            median = statistics.median(ratios)
            rows.append(
                ("gRPC req/s >= REST req/s (median of per-round ratios)", median >= 1, f"{rounds}; {best_runs}")
            )
    reference = best.get("oar REST (reference)")
    if rest and reference and not args.rate:
        same = [r.goodput for r in results if r.name == "oar REST"]  # answered 2xx: shed requests do not count
        old = [r.goodput for r in results if r.name == "oar REST (reference)"]
        ratio = statistics.median(same) / statistics.median(old)
        rows.append(
            (
                "REST req/s within 10% of the reference checkout (median of rounds)",
                ratio >= 0.9,
                f"{ratio:.2f}x ({statistics.median(same):.0f} vs {statistics.median(old):.0f} req/s over "
                f"{len(same)} rounds; RSS {rest.rss_mib:.0f} vs {reference.rss_mib:.0f} MiB)",
            )
        )
    if rest and base:
        rows.append(
            (
                "server RSS <= 1.5x the plain FastAPI server",
                rest.rss_mib <= 1.5 * base.rss_mib,
                f"{rest.rss_mib:.0f} vs {base.rss_mib:.0f} MiB ({rest.rss_mib / base.rss_mib:.2f}x)",
            )
        )
    for run in open_loop:
        share = run.goodput / run.sustainable
        rows.append(
            (
                f"{run.name}: admitted p99 < 100 ms, excess shed with 503, goodput >= 90% of sustainable",
                run.admitted_p99 < 100 and (run.shed > 0 or run.errors == 0) and share >= 0.9,
                f"admitted p99 {run.admitted_p99:.1f} ms, {run.shed} shed, goodput {run.goodput:.0f} req/s "
                f"({share:.0%} of {run.sustainable:.0f})",
            )
        )
    if overload:
        p99, shed, alive = overload
        rows.append(
            (
                "overload: admitted p99 < 100 ms, excess shed, no crash",
                p99 < 100 and shed > 0 and alive,
                f"admitted p99 <= {p99:.0f} ms, {shed:.0f} shed with 503, server {'alive' if alive else 'DOWN'}",
            )
        )
    if rows:
        print("\n| target | verdict | measured |\n|---|---|---|")
        for target, met, measured in rows:
            print(f"| {target} | {'met' if met else 'NOT met'} | {measured} |")


if __name__ == "__main__":
    main()
