"""The scheduler as a process: ``python -m oar.jobs.daemon [--cluster ADDR] [--idle-exit S]``.

``oar jobs submit`` calls ``ensure_running``: when no scheduler of that cluster holds the lock on this
hub, it starts one in the background (its own session, output in ``OAR_HOME/jobs/scheduler.log``) that
exits after ``--idle-exit`` seconds with nothing to do. So the local executor needs no service to be
installed; a long-lived one is just this command under systemd.

A foreground scheduler (``oar jobs scheduler``) started while such a background one holds the lock
stops it and takes over (with its own settings: the simulator, cloud notices); one started while
another foreground scheduler runs exits 1 and says which process to stop.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from oar._core.errors import InvalidInputError
from oar._core.settings import oar_home
from oar.hub import Hub
from oar.jobs.cloud import PROVIDERS
from oar.jobs.notices import MIN_NOTICE_S, MODES, preemption_source
from oar.jobs.pools import Pools, load_pools
from oar.jobs.preemption import PreemptionSource
from oar.jobs.scheduler import Scheduler, SchedulerConfig, scheduler_lock

LOCAL = "local"


def spans_nodes(cluster: str) -> bool:
    """Local attempts keep all their workers on one node (torchrun); Ray spreads them over nodes."""
    return cluster != LOCAL


def build(
    hub: Hub,
    cluster: str = LOCAL,
    pools: Pools | None = None,
    preemptions: PreemptionSource | None = None,
    config: SchedulerConfig | None = None,
) -> Scheduler:
    pools = pools or load_pools()
    config = config or SchedulerConfig(quotas=dict(pools.quotas), default_quota=pools.default_quota)
    if cluster == LOCAL:
        from oar.jobs.executors.local import LocalExecutor, LocalInventory
        from oar.jobs.store import JobStore

        executor, inventory = LocalExecutor(), LocalInventory(JobStore.open(hub))
    else:
        from oar.jobs.executors.ray import RayExecutor, RayInventory

        executor = RayExecutor(cluster)
        inventory = RayInventory()
    return Scheduler(hub, pools, executor, inventory, preemptions, cluster, config, spans_nodes(cluster))


def ensure_running(hub: Hub, cluster: str = LOCAL, idle_exit_s: float = 60.0, pools_path: str | None = None) -> bool:
    """Start a background scheduler for ``cluster`` unless one runs; True if one was started."""
    with scheduler_lock(hub, cluster) as free:
        if not free:
            return False
    logfile = (hub.home / "jobs" / "scheduler.log").open("ab")
    env = {**os.environ, "OAR_HOME": str(hub.home)}
    command = [sys.executable, "-m", "oar.jobs.daemon", "--cluster", cluster, "--idle-exit", str(idle_exit_s)]
    command += ["--background"] + (["--pools", pools_path] if pools_path else [])
    subprocess.Popen(command, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
    return True


def _background_marker(hub: Hub, cluster: str) -> Path:
    slug = "".join(c if c.isalnum() else "_" for c in cluster)
    return hub.home / "jobs" / f"scheduler-{slug}.background"


def _lock_holder(hub: Hub, cluster: str) -> int | None:
    slug = "".join(c if c.isalnum() else "_" for c in cluster)
    try:
        return int((hub.home / "jobs" / f"scheduler-{slug}.lock").read_text().strip())
    except (OSError, ValueError):
        return None


def take_over(hub: Hub, cluster: str, wait_s: float = 30.0) -> int | None:
    """Stop the background scheduler that ``oar jobs submit`` started, so a foreground one can run.

    Returns its pid, or None when the lock's holder is not such a scheduler (then nothing is stopped).
    The background scheduler stops between two ticks; attempts run in their own sessions and are adopted.
    """
    holder = _lock_holder(hub, cluster)
    try:
        background = int(_background_marker(hub, cluster).read_text().strip())
    except (OSError, ValueError):
        return None
    if holder is None or holder != background:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(holder, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with scheduler_lock(hub, cluster) as free:
            if free:
                return holder
        time.sleep(0.2)
    return None


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m oar.jobs.daemon", description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default=LOCAL, help="local, or a Ray address (ray://head:10001, auto)")
    parser.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")
    parser.add_argument("--pools", default=None, help="pools file (default: OAR_POOLS, OAR_HOME/pools.yaml)")
    parser.add_argument("--preemptions", choices=MODES, default=None, help="where preemption notices come from")
    parser.add_argument(
        "--simulate-preemptions",
        type=float,
        default=None,
        metavar="SPEEDUP",
        help="preempt spot nodes at their pools' rates, time compressed SPEEDUP times (implies simulate)",
    )
    parser.add_argument("--min-notice", type=float, default=MIN_NOTICE_S, help="simulated notices last at least this")
    parser.add_argument("--cloud", choices=sorted(PROVIDERS), default=None, help="whose metadata endpoint (cloud)")
    parser.add_argument("--metadata-url", default=None, help="the metadata endpoint, if not the cloud's own")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--background", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:  # settings first: a mistake is one line, before the hub or any logging starts
        pools = load_pools(args.pools)
        mode = args.preemptions or ("simulate" if args.simulate_preemptions else "manual")
        source = preemption_source(
            mode,
            pools,
            oar_home(),
            args.cluster,
            speedup=args.simulate_preemptions,
            seed=args.seed,
            min_notice_s=args.min_notice,
            provider=args.cloud,
            endpoint=args.metadata_url,
        )
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    hub = Hub()
    for attempt in range(3):  # a background scheduler that just took the lock may not have marked itself yet
        if not args.background and (stopped := take_over(hub, args.cluster)) is not None:
            print(f"stopped the background scheduler (pid {stopped}) that `oar jobs submit` started; taking over")
        if _serve(hub, args, pools, source, mode):
            return 0
        if args.background:
            break
        time.sleep(0.5 * (attempt + 1))
    holder = _lock_holder(hub, args.cluster)
    print(
        f"error: a scheduler for {args.cluster} already runs on {hub.home} (pid {holder}); only one runs per "
        f"hub and cluster: stop it first (kill {holder}), then start this one again",
        file=sys.stderr,
    )
    return 0 if args.background else 1


def _serve(hub: Hub, args: argparse.Namespace, pools: Pools, source: PreemptionSource, mode: str) -> bool:
    """Run the scheduler under the lock until idle or SIGTERM; False if another scheduler holds the lock."""
    with scheduler_lock(hub, args.cluster) as mine:
        if not mine:
            return False
        marker = _background_marker(hub, args.cluster)
        if args.background:
            marker.write_text(str(os.getpid()))
        else:
            marker.unlink(missing_ok=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        logging.getLogger("oar.jobs").info(
            "scheduler for %s on %s (pid %d), preemptions: %s", args.cluster, hub.home, os.getpid(), mode
        )
        build(hub, args.cluster, pools, source).run(until_idle_s=args.idle_exit, stop=stop)
    return True


if __name__ == "__main__":
    sys.exit(main())
