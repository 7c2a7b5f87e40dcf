"""Model-as-a-Service deployments: start-to-ready time, crash recovery, and a rollover under load.

1. start-to-ready: spawn to the first 200 on ``/v2/health/ready``, for the entry point deployments use
   (``python -m oar.cli.serve_main``) against the baseline ``python -m oar.cli.main serve`` (which imports
   every command, torch included), alternating, same model, same machine, one run.
2. crash recovery: ``kill -9`` of a supervised server to ready again on the same port.
3. rollover: ``--connections`` keep-alive connections POST to the same model id while the deployment
   rolls over to the next version and back; every answer is read and checked, every failure counted.
   The baseline is the same load on the same server for as long, with no rollover: the offered rate of
   both and their ratio are printed.

    python bench/deploy.py                                   # trains a small chnsenti model in a temp hub
    python bench/deploy.py --home ~/.oar --model chnsenti-cls   # the quickstart model
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

TEXT = "质量很好，非常满意"


def ensure_versions(model: str, limit: int) -> list[int]:
    """The model's versions in the hub; trains it (reduced data) when absent; registers a second version of the
    same package when there is only one, so there is something to roll over to."""
    from oar.hub import Hub

    hub = Hub()
    versions = sorted(m.version for m in hub.models.list() if m.name == model)
    if not versions:
        from oar.pipelines import TextClassifierRecipe, train_text_classifier
        from oar.train import TrainerConfig

        print(f"training {model} on {limit} chnsenti texts (1 epoch) ...", flush=True)
        recipe = TextClassifierRecipe(limit=limit, trainer=TrainerConfig(epochs=1, patience=None))
        train_text_classifier("chnsenti", model, recipe, hub, progress=False)
        versions = [1]
    if len(versions) == 1:
        hub.register_model(hub.open_package(model, versions[0]).path, name=model)
        versions = sorted(m.version for m in hub.models.list() if m.name == model)
    return versions


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_to_ready(argv: list[str], endpoint: str, log: Path) -> tuple[float, float]:
    """Wall seconds from spawn to ready, and the CPU seconds the server used to get there (which, unlike
    wall time, does not grow with what else the machine runs)."""
    from oar.supervise import LocalProcessSpawner, ProcessSpec, wait_ready

    spawner = LocalProcessSpawner(ProcessSpec(argv=tuple(argv), log_path=str(log)))
    started = time.monotonic()
    spawner.start()
    try:
        wait_ready(spawner, endpoint, timeout=120, interval=0.02)
        return time.monotonic() - started, cpu_seconds(spawner.pid)
    finally:
        spawner.stop(10)


def bench_start(model: str, version: int, runs: int, work: Path) -> dict[str, float]:
    from oar.supervise import allocate_ports

    times: dict[str, list[float]] = {"serve_main": [], "cli_main": []}
    cpu: dict[str, list[float]] = {"serve_main": [], "cli_main": []}
    entries = {"serve_main": ["-m", "oar.cli.serve_main"], "cli_main": ["-m", "oar.cli.main", "serve"]}
    for run in range(runs):
        for name, entry in entries.items():
            port, grpc_port = allocate_ports(2)
            argv = [sys.executable, *entry, f"{model}:{version}", "--port", str(port), "--grpc-port", str(grpc_port)]
            seconds, used = time_to_ready(argv, f"http://127.0.0.1:{port}", work / f"start-{name}-{run}.log")
            times[name].append(seconds)
            cpu[name].append(used)
    return (
        {name: statistics.median(values) for name, values in times.items()}
        | {f"{name}_all": values for name, values in times.items()}
        | {f"{name}_cpu": statistics.median(values) for name, values in cpu.items()}
    )


def bench_recovery(deployment, token: str) -> float:
    from oar.supervise import RestartPolicy, Supervisor

    policy = RestartPolicy(initial_delay=0.0, start_timeout=120)
    with Supervisor(policy=policy, interval=0.02) as supervisor:
        supervisor.watch("bench", deployment.spawner, ready=deployment.ready)
        killed = time.monotonic()
        os.kill(deployment.spawner.pid, signal.SIGKILL)
        while supervisor.record("bench")["restarts"] < 1 or supervisor.record("bench")["status"] != "running":
            time.sleep(0.01)
        seconds = time.monotonic() - killed
        supervisor.unwatch("bench", stop=False)
    return seconds


def bench_rollover(deployment, token: str, versions: tuple[int, int], connections: int, settle: float) -> dict:
    from oar.supervise import LiveFigures, MetricsSnapshot
    from oar.supervise.loadgen import LoadGenerator

    body = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [TEXT]}]}).encode()
    path = f"/v2/models/{deployment.model}/infer"
    with LoadGenerator("127.0.0.1", deployment.port, path, body, connections, token, deployment.model) as steady:
        time.sleep(3 * settle)
    rollovers = []
    with LoadGenerator("127.0.0.1", deployment.port, path, body, connections, token, deployment.model) as load:
        time.sleep(settle)
        before = MetricsSnapshot.scrape(deployment.endpoint, deployment.model)
        for version in (versions[1], versions[0]):
            started = time.monotonic()
            deployment.rollover(version)
            rollovers.append(time.monotonic() - started)
            time.sleep(settle)
        figures = LiveFigures.between(before, MetricsSnapshot.scrape(deployment.endpoint, deployment.model))
    result = load.result
    return {
        "offered_rps": result.requests_per_s,
        "steady_rps": steady.result.requests_per_s,
        "sent": result.sent,
        "failed": result.failed,
        "reasons": dict(result.reasons),
        "versions": dict(result.versions),
        "rollover_s": rollovers,
        "figures": figures.to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="OAR_HOME holding the model (default: a temporary hub, model trained)")
    parser.add_argument("--model", default="chnsenti-cls")
    parser.add_argument("--limit", type=int, default=3000, help="training texts when the model must be trained")
    parser.add_argument("--runs", type=int, default=3, help="starts per entry point")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of load before and after each rollover")
    args = parser.parse_args()
    home = Path(args.home).expanduser() if args.home else Path(tempfile.mkdtemp(prefix="oar-bench-deploy-"))
    os.environ["OAR_HOME"] = str(home)
    versions = ensure_versions(args.model, args.limit)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    first, second = versions[-2], versions[-1]

    from oar.supervise import ServeDeployment

    work = Path(tempfile.mkdtemp(prefix="oar-deploy-"))
    start = bench_start(args.model, first, args.runs, work)
    print(
        f"start-to-ready ({args.model}:{first}, median of {args.runs}): "
        f"serve_main {start['serve_main']:.2f} s, baseline oar.cli.main serve {start['cli_main']:.2f} s "
        f"(ratio {start['cli_main'] / start['serve_main']:.2f}x)  all: "
        f"{[round(t, 2) for t in start['serve_main_all']]} vs {[round(t, 2) for t in start['cli_main_all']]}"
    )
    print(
        f"CPU seconds the server used until ready (median): serve_main {start['serve_main_cpu']:.2f} s, "
        f"baseline {start['cli_main_cpu']:.2f} s (ratio {start['cli_main_cpu'] / start['serve_main_cpu']:.2f}x)"
    )
    deployment, token = ServeDeployment.create(args.model, first, work / "dep", home=home)
    started = time.monotonic()
    deployment.start(timeout=120)
    print(f"ServeDeployment.start() to ready: {time.monotonic() - started:.2f} s")
    try:
        recovery = bench_recovery(deployment, token)
        print(f"kill -9 to ready again (Supervisor, no back-off on a first crash): {recovery:.2f} s")
        rollover = bench_rollover(deployment, token, (first, second), args.connections, args.settle)
    finally:
        deployment.undeploy()
    figures = rollover["figures"]
    print(
        f"rollover {first}->{second}->{first} under load ({args.connections} connections): "
        f"offered {rollover['offered_rps']:.0f} req/s (without a rollover {rollover['steady_rps']:.0f}, ratio "
        f"{rollover['offered_rps'] / rollover['steady_rps']:.2f}x), {rollover['sent']} sent, "
        f"{rollover['failed']} failed "
        f"{rollover['reasons'] or ''}; answers by version {rollover['versions']}; "
        f"rollovers took {', '.join(f'{s:.2f}' for s in rollover['rollover_s'])} s; server: "
        f"{figures['requests_per_s']:.0f} req/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
        f"{figures['errors']} errors"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
