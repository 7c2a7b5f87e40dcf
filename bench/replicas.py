"""Replicas behind HAProxy against one process served directly: the hop's cost, and zero failures on a kill -9.

One run, one machine, one small real model (a 4 -> 3 linear head exported to ONNX and served by ``oar
serve``: the cheapest inference there is, so the balancer's share of each request is at its largest):

1. three deployments side by side: ``direct`` (one ``oar serve``, called on its own port), ``haproxy x1``
   and ``haproxy x2`` (one and two replicas behind the HAProxy endpoint of a ``ReplicatedDeployment``);
2. for each, alternating, ``--repeats`` times: a closed loop of ``--connections`` keep-alive connections
   for ``--seconds`` (throughput: req/s, CPU per request of the servers and of HAProxy), then an open loop
   at ``--rate`` req/s for as long (latency: p50/p99 at the same offered load, so the difference of p50s is
   the hop's added latency, not queueing);
3. the fault: ``kill -9`` of one of the two replicas under the open-loop load; every request is counted.

On a 2-core machine two replicas cannot be faster than one: client, balancer and servers share the same two
cores. What this measures is what the balancer costs per request and that a replica's death costs nothing.

    python bench/replicas.py                       # ~2 minutes
    python bench/replicas.py --seconds 3 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

MODEL = "bench-head"
BODY = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0.5, -1, 2, 0.25]}]})


def register(work: Path) -> int:
    import torch
    from torch import nn

    import oar
    from oar.export import InputSpec
    from oar.hub import Hub

    torch.manual_seed(0)
    spec = [InputSpec([None, 4], "float32", "x")]
    package = oar.jit.save(nn.Linear(4, 3), work / "head", input_spec=spec, name=MODEL)
    return Hub().register_model(package.path).version


def group_cpu(pgid: int) -> float:
    """CPU seconds so far of every process in group ``pgid`` (a server and its children, HAProxy's master and
    worker)."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def run_load(port: int, token: str, seconds: float, connections: int, rate: float | None):  # type: ignore[no-untyped-def]
    from oar.supervise.loadgen import LoadGenerator

    path = f"/v2/models/{MODEL}/infer"
    load = LoadGenerator("127.0.0.1", port, path, BODY.encode(), connections, token, MODEL, rate=rate)
    with load:
        time.sleep(seconds)
    return load.result


def measure(target: dict, args: argparse.Namespace) -> dict[str, float]:
    servers, balancer = target["servers"](), target["balancer"]
    cpu0 = (sum(group_cpu(p) for p in servers), group_cpu(balancer) if balancer else 0.0)
    closed = run_load(target["port"], target["token"], args.seconds, args.connections, None)
    cpu1 = (sum(group_cpu(p) for p in servers), group_cpu(balancer) if balancer else 0.0)
    opened = run_load(target["port"], target["token"], args.seconds, args.connections, args.rate)
    answered = max(closed.ok, 1)
    return {
        "req_s": closed.ok / closed.seconds,
        "failed": closed.failed + opened.failed,
        "server_cpu_ms": 1000 * (cpu1[0] - cpu0[0]) / answered,
        "haproxy_cpu_ms": 1000 * (cpu1[1] - cpu0[1]) / answered,
        "p50_ms": opened.latency_ms(0.5) or 0.0,
        "p99_ms": opened.latency_ms(0.99) or 0.0,
        "closed_p50_ms": closed.latency_ms(0.5) or 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load window")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the three deployments")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop offered req/s for the latencies")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oar-bench-replicas-"))
    os.environ["OAR_HOME"] = str(work / "home")
    os.environ.pop("OAR_DATABASE_URL", None)
    from oar.supervise import ReplicaCount, ReplicatedDeployment, ServeDeployment

    version = register(work)
    direct, direct_token = ServeDeployment.create(MODEL, version, work / "direct", home=work / "home")
    direct.start(timeout=120)
    sets = {}
    for count in (1, 2):
        served, token = ReplicatedDeployment.create(
            MODEL, version, work / f"x{count}", ReplicaCount(count, count), home=work / "home"
        )
        served.start(timeout=120)
        sets[count] = (served, token)
    targets = {
        "direct": {
            "port": direct.port,
            "token": direct_token,
            "servers": lambda: [direct.spawner.pid],
            "balancer": None,
        },
        **{
            f"haproxy x{count}": {
                "port": served.port,
                "token": token,
                "servers": lambda served=served: [s.spawner.pid for s in served.replicas.values()],
                "balancer": served.balancer.spawner.pid,
            }
            for count, (served, token) in sets.items()
        },
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    try:
        for _ in range(args.repeats):
            for name, target in targets.items():
                results[name].append(measure(target, args))
        fault = kill_one_under_load(*sets[2], args)
    finally:
        direct.undeploy()
        for served, _ in sets.values():
            served.undeploy()
    report(results, fault, args)
    return 0


def kill_one_under_load(served, token: str, args: argparse.Namespace) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from oar.supervise.loadgen import LoadGenerator

    victim = served.replicas["r0"]
    old = victim.spawner.pid
    path = f"/v2/models/{MODEL}/infer"
    load = LoadGenerator("127.0.0.1", served.port, path, BODY.encode(), args.connections, token, MODEL, rate=args.rate)
    with load:
        time.sleep(1.0)
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()
        while not (victim.spawner.pid != old and victim.ready()):
            time.sleep(0.02)
        back = time.monotonic() - killed
        time.sleep(max(args.seconds - 1.0, 1.0))
    result = load.result
    return {"sent": result.sent, "ok": result.ok, "failed": result.failed, "replaced_s": back}


def report(results: dict[str, list[dict[str, float]]], fault: dict[str, float], args: argparse.Namespace) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    base = "direct"
    print(f"\n{args.connections} connections, {args.seconds:g} s windows, {args.repeats} rounds, medians")
    print(
        f"{'':12} {'req/s':>8} {'x direct':>8} {'p50 ms':>7} {'p99 ms':>7} {'hop p50':>8} "
        f"{'srv CPU ms/req':>14} {'haproxy CPU ms/req':>18} {'failed':>6}"
    )
    for name in results:
        print(
            f"{name:12} {median(name, 'req_s'):8.0f} {median(name, 'req_s') / median(base, 'req_s'):8.2f} "
            f"{median(name, 'p50_ms'):7.2f} {median(name, 'p99_ms'):7.2f} "
            f"{median(name, 'p50_ms') - median(base, 'p50_ms'):+8.2f} "
            f"{median(name, 'server_cpu_ms'):14.3f} {median(name, 'haproxy_cpu_ms'):18.3f} "
            f"{int(sum(r['failed'] for r in results[name])):6d}"
        )
    print(f"(latencies at {args.rate:g} req/s offered, open loop; req/s and CPU from the closed loop)")
    print(
        f"kill -9 of one of two replicas under {args.rate:g} req/s: {fault['sent']} sent, {fault['ok']} ok, "
        f"{fault['failed']} failed; replaced and ready in {fault['replaced_s']:.2f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
