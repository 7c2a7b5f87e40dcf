"""The scheduler as a process: ``python -m oar.jobs.daemon [--cluster ADDR] [--idle-exit S]``.

``oar jobs submit`` calls ``ensure_running``: when no scheduler of that cluster holds the lock on this
hub, it starts one in the background (its own session, output in ``OAR_HOME/jobs/scheduler.log``) that
exits after ``--idle-exit`` seconds with nothing to do. So the local executor needs no service to be
installed; a long-lived one is just this command under systemd.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time

from oar.hub import Hub
from oar.jobs.pools import Pools, load_pools
from oar.jobs.preemption import PoissonPreemptions, PreemptionSource
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


def ensure_running(hub: Hub, cluster: str = LOCAL, idle_exit_s: float = 60.0) -> bool:
    """Start a background scheduler for ``cluster`` unless one runs; True if one was started."""
    with scheduler_lock(hub, cluster) as free:
        if not free:
            return False
    logfile = (hub.home / "jobs" / "scheduler.log").open("ab")
    env = {**os.environ, "OAR_HOME": str(hub.home)}
    command = [sys.executable, "-m", "oar.jobs.daemon", "--cluster", cluster, "--idle-exit", str(idle_exit_s)]
    subprocess.Popen(command, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oar.jobs.daemon", description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default=LOCAL, help="local, or a Ray address (ray://head:10001, auto)")
    parser.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")
    parser.add_argument("--pools", default=None, help="pools file (default: OAR_POOLS, OAR_HOME/pools.yaml)")
    parser.add_argument(
        "--simulate-preemptions",
        type=float,
        default=None,
        metavar="SPEEDUP",
        help="preempt spot nodes at their pools' rates, time compressed SPEEDUP times",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    hub = Hub()
    pools = load_pools(args.pools)
    source = None
    if args.simulate_preemptions:
        source = PoissonPreemptions(pools, seed=args.seed, speedup=args.simulate_preemptions)
    with scheduler_lock(hub, args.cluster) as mine:
        if not mine:
            print(f"a scheduler for {args.cluster} already runs on {hub.home}", file=sys.stderr)
            return 0
        logging.getLogger("oar.jobs").info("scheduler for %s on %s (pid %d)", args.cluster, hub.home, os.getpid())
        build(hub, args.cluster, pools, source).run(until_idle_s=args.idle_exit)
    time.sleep(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
