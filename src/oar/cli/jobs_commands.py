"""``oar jobs submit | list | show | logs | cancel | scheduler | pools``, ``oar runs cost``, ``oar models cost``.

Nothing heavy is imported until a command runs: ``oar --help`` stays fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from oar._core.errors import InvalidInputError
from oar.cli import hub_commands

console = Console()
jobs_app = typer.Typer(help="Training jobs on pools of priced nodes (spot and on-demand).", no_args_is_help=True)


PoolsOption = Annotated[
    str | None, typer.Option("--pools", help="pools file (default: OAR_POOLS, OAR_HOME/pools.yaml, built-in pools)")
]


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


def _workers(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    low, _, high = text.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        raise InvalidInputError(f"--workers: expected N or MIN-MAX, got '{text}'")
    return int(low), int(high or low)


def _hub():  # type: ignore[no-untyped-def]
    import oar.jobs  # noqa: F401  (the job tables, before the hub creates its tables)
    from oar.hub import Hub

    return Hub()


@jobs_app.command("submit")
def submit(
    config: Annotated[Path, typer.Argument(help="an `oar train` YAML file, optionally with a resources: section")],
    pool: Annotated[str | None, typer.Option(help="pool of the pools file (see `oar jobs pools`)")] = None,
    workers: Annotated[str | None, typer.Option(help="N, or MIN-MAX for an elastic job")] = None,
    cpus: Annotated[int | None, typer.Option(min=1, help="CPUs per worker")] = None,
    priority: Annotated[int | None, typer.Option(help="higher runs first")] = None,
    user: Annotated[str | None, typer.Option(help="whose quota it counts against")] = None,
    retries: Annotated[int | None, typer.Option(min=0, help="re-runs after a crash")] = None,
    max_preemptions: Annotated[int | None, typer.Option(min=0, help="then move to on-demand")] = None,
    deadline: Annotated[str | None, typer.Option(help="ISO time; near it the job moves to on-demand")] = None,
    cluster: Annotated[str, typer.Option(help="'local', or a Ray address such as ray://head:10001")] = "local",
    start_scheduler: Annotated[bool, typer.Option(help="start a background scheduler if none runs")] = True,
    pools_file: PoolsOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the job id (for scripts)")] = False,
) -> None:
    """Queue a training job; a scheduler places it, resumes it after preemptions and records its cost."""
    from oar.jobs.daemon import ensure_running, spans_nodes
    from oar.jobs.pools import load_pools
    from oar.jobs.service import submit as submit_job

    hub = _hub()
    overrides = {
        "pool": pool,
        "workers": _workers(workers),
        "cpus": cpus,
        "priority": priority,
        "user": user,
        "retries": retries,
        "max_preemptions": max_preemptions,
        "deadline": deadline,
    }
    job = submit_job(config, hub, load_pools(pools_file), overrides, cluster, spans_nodes(cluster))
    say = (lambda _text: None) if quiet else console.print
    say(f"job [bold]{job.id}[/] queued on {job.pool} (run {job.run_id}); follow it: oar jobs logs {job.id} -f")
    if quiet:
        sys.stdout.write(job.id + "\n")
    pools_path = str(Path(pools_file).resolve()) if pools_file else None
    if start_scheduler and ensure_running(hub, cluster, pools_path=pools_path):
        say(f"started a scheduler for {cluster} (log: {hub.home / 'jobs' / 'scheduler.log'})")


def reason_line(reason: str) -> str:
    """One line of a reason: a failure's first line with the log's last non-empty line (the error) after it."""
    first, _, tail = (reason or "").partition("\n")
    if not first.endswith("; log tail:"):
        return first
    last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
    return first.removesuffix("; log tail:") + (f": {last}" if last else "")


@jobs_app.command("list")
def list_jobs() -> None:
    """Jobs, oldest first, with their state and the reason of their last change."""
    from oar.jobs.store import JobStore

    jobs = JobStore.open(_hub()).list()
    rows = [
        [j.id, j.name, j.user, j.state, j.priority, j.current_pool, j.preemptions, j.run_id, reason_line(j.reason)]
        for j in jobs
    ]
    _table("jobs", ["id", "name", "user", "state", "priority", "pool", "preemptions", "run", "reason"], rows)


@jobs_app.command("show")
def show(job_id: str) -> None:
    """A job's history (every state change with its reason) and its attempts with their cost."""
    from oar.jobs.ledger import summarize
    from oar.jobs.store import JobStore

    store = JobStore.open(_hub())
    job = store.get(job_id)
    console.print(f"job [bold]{job.id}[/] {job.name}: {job.state} (run {job.run_id}, user {job.user})")
    console.print(
        f"pool {job.pool} → {job.current_pool}; workers {job.workers_min}-{job.workers_max} x {job.cpus} CPU; "
        f"priority {job.priority}; {_failures(job.failures, job.retries)}; preemptions {job.preemptions}"
    )
    _table(
        "history",
        ["at", "state", "reason"],
        [[e.at.isoformat(timespec="seconds"), e.state, e.reason] for e in job.events],
    )
    _attempts(summarize(store.attempts(job.id)))


def _failures(failures: int, retries: int) -> str:
    """'retries 1 of 2 used', with the crash that had no retry left said apart (not 'retries 1/0')."""
    used = min(failures, retries)
    text = f"retries {used} of {retries} used"
    return text + (f", {failures - used} crash with none left" if failures > retries else "")


def _attempts(summary: Any) -> None:
    rows = [
        [
            a.id,
            a.pool,
            ",".join(sorted(set(a.nodes))),
            a.workers,
            a.outcome or a.state,
            a.exit_code,
            f"{a.start_step}→{a.last_step}",
            a.steps_redone,
            f"{a.checkpoint_seconds:.2f}",
            f"{a.seconds():.1f}",
            f"{a.cost():.6f}",
        ]
        for a in summary.attempts
    ]
    columns = ["attempt", "pool", "nodes", "workers", "outcome", "exit", "steps", "redone", "ckpt s", "s", "$"]
    _table("attempts", columns, rows)
    pools = ", ".join(f"{p} ${d:.6f}" for p, d in sorted(summary.dollars_by_pool.items()))
    console.print(
        f"total ${summary.dollars:.6f} ({pools or 'nothing yet'}); {summary.node_seconds:.1f} node-s; "
        f"{summary.preemptions} preemption(s); {summary.steps_redone} step(s) redone "
        f"(${summary.wasted_dollars:.6f}); checkpoints {summary.checkpoint_seconds:.2f} s"
    )


@jobs_app.command("logs")
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the job ends")] = False,
) -> None:
    """The job's log: every attempt's output, each after a header line."""
    from oar.jobs.scheduler import log_path
    from oar.jobs.store import JobStore

    hub = _hub()
    store = JobStore.open(hub)
    job = store.get(job_id)
    path, offset = log_path(hub, job.id), 0
    while True:
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
        if not follow or store.get(job.id).done:
            if follow and path.exists() and path.stat().st_size > offset:
                continue
            break
        time.sleep(0.5)
    if follow:
        job = store.get(job.id)
        console.print(f"job {job.id} {job.state}: {job.reason.splitlines()[0] if job.reason else ''}")


@jobs_app.command("cancel")
def cancel(job_id: str) -> None:
    """Cancel a job: a waiting one at once; a running one checkpoints and stops."""
    from oar.jobs.service import cancel as cancel_job

    job = cancel_job(job_id, _hub())
    console.print(
        f"job {job.id}: {'cancelled' if job.state == 'cancelled' else 'cancel requested (' + job.state + ')'}"
    )


@jobs_app.command("scheduler")
def scheduler(
    cluster: Annotated[str, typer.Option(help="'local', or a Ray address")] = "local",
    idle_exit: Annotated[float | None, typer.Option(help="exit after this many idle seconds")] = None,
    preemptions: Annotated[
        str | None,
        typer.Option(help="simulate | cloud | manual (default: simulate with --simulate-preemptions, else manual)"),
    ] = None,
    simulate_preemptions: Annotated[
        float | None, typer.Option(help="preempt spot nodes at their pools' rates, time sped up this many times")
    ] = None,
    min_notice: Annotated[
        float | None, typer.Option(help="simulated notices last at least this many seconds (default 10)")
    ] = None,
    cloud: Annotated[str | None, typer.Option(help="aws | gcp | azure: whose spot notices to poll (cloud)")] = None,
    metadata_url: Annotated[str | None, typer.Option(help="the metadata endpoint, if not the cloud's own")] = None,
    pools_file: PoolsOption = None,
    seed: int = 0,
) -> None:
    """Run the scheduler in the foreground (one per cluster and hub; it takes over from one `submit` started)."""
    from oar.jobs.daemon import main

    args = ["--cluster", cluster, "--seed", str(seed)]
    args += ["--idle-exit", str(idle_exit)] if idle_exit is not None else []
    args += ["--preemptions", preemptions] if preemptions else []
    args += ["--simulate-preemptions", str(simulate_preemptions)] if simulate_preemptions else []
    args += ["--min-notice", str(min_notice)] if min_notice is not None else []
    args += ["--cloud", cloud] if cloud else []
    args += ["--metadata-url", metadata_url] if metadata_url else []
    args += ["--pools", pools_file] if pools_file else []
    if preemptions is not None and preemptions not in ("simulate", "cloud", "manual"):
        raise InvalidInputError(f"--preemptions: expected simulate, cloud or manual, got '{preemptions}'")
    if cloud is not None and cloud not in ("aws", "gcp", "azure"):
        raise InvalidInputError(f"--cloud: expected aws, gcp or azure, got '{cloud}'")
    raise typer.Exit(main(args))


@jobs_app.command("preempt")
def preempt(
    target: Annotated[str, typer.Argument(help="a node id (see `oar jobs show JOB`) or a running job's id")],
    notice: Annotated[float, typer.Option(min=0, help="seconds until the node is lost; 0: now, no checkpoint")] = 30,
    cluster: Annotated[str, typer.Option(help="the cluster whose scheduler gets the notice")] = "local",
) -> None:
    """Preempt a node (or the nodes of a running job) as a spot reclaim would: notice, checkpoint, requeue."""
    from oar.jobs.notices import send_notice
    from oar.jobs.scheduler import scheduler_lock
    from oar.jobs.store import JobStore

    hub = _hub()
    store = JobStore.open(hub)
    nodes = _nodes_of(store, target, cluster)
    for node in nodes:
        send_notice(hub.home, cluster, node, notice, f"preempted by operator ({target})")
    console.print(f"notice sent for {', '.join(nodes)}: {notice:g} s")
    with scheduler_lock(hub, cluster) as free:
        if free:
            console.print(f"no scheduler for {cluster} runs now: the next one (`oar jobs scheduler`) acts on it")


def _nodes_of(store: Any, target: str, cluster: str) -> list[str]:
    """The node ``target`` names, or the nodes a running job holds."""
    from oar._core.errors import NotFoundError

    known = {n.id for n in store.nodes(states=("up", "notice"))}
    if target in known:
        return [target]
    try:
        job = store.get(target)
    except NotFoundError:
        if cluster != "local":  # Ray's nodes are not rows: the scheduler matches the id against its inventory
            return [target]
        raise InvalidInputError(
            f"'{target}' is neither a node nor a job; nodes: {', '.join(sorted(known)) or 'none'}"
        ) from None
    running = store.attempts(job.id, states=("starting", "running"))
    if not running:
        raise InvalidInputError(f"job {job.id} is {job.state}: it holds no node to preempt")
    return sorted({node for attempt in running for node in attempt.nodes})


@jobs_app.command("pools")
def pools(
    pools_file: PoolsOption = None,
) -> None:
    """The pools jobs can ask for, with their prices (OAR_POOLS, OAR_HOME/pools.yaml, or the defaults)."""
    from oar.jobs.pools import load_pools

    rows = [
        [
            p.name,
            p.node_type,
            p.node_cpus,
            p.node_gpus,
            f"{p.price_per_hour:.4f}",
            "yes" if p.spot else "no",
            f"{p.spot_discount:.0%}",
            f"{p.node_price_per_hour:.4f}",
            f"{p.notice_s:g}",
            f"{p.min_nodes}-{p.max_nodes}",
        ]
        for p in load_pools(pools_file).pools.values()
    ]
    columns = ["pool", "node type", "CPUs", "GPUs", "$/h on-demand", "spot", "discount", "$/h", "notice s", "nodes"]
    _table("pools", columns, rows)


@jobs_app.command("cluster-config")
def cluster_config(
    provider: Annotated[str, typer.Option(help="aws or gcp")] = "aws",
    region: Annotated[str, typer.Option(help="cloud region")] = "us-east-1",
    out: Annotated[Path, typer.Option(help="folder for cluster.yaml and the wheel it ships")] = Path("oar-cluster"),
    project_id: Annotated[str | None, typer.Option(help="GCP project of the nodes (required with gcp)")] = None,
    wheel: Annotated[Path | None, typer.Option(help="a built oar-platform wheel (default: build one)")] = None,
    pools_file: PoolsOption = None,
) -> None:
    """Write a Ray cluster launcher config (`ray up OUT/cluster.yaml`), one autoscaled node type per pool.

    Every node installs this project's own wheel, built into OUT/wheels and shipped by file_mounts.
    """
    from oar.jobs.launcher import write_cluster_files
    from oar.jobs.pools import load_pools

    path = write_cluster_files(load_pools(pools_file), out, provider, region, project_id=project_id, wheel=wheel)
    typer.echo(f"wrote {path} and {path.parent / 'wheels'}; start it with: ray up {path}")


@hub_commands.runs_app.command("cost")
def run_cost(run_id: str) -> None:
    """What a run cost: every job attempt, its pool, node-seconds, preemptions, redone steps, checkpoints."""
    from oar.jobs.ledger import run_cost as cost

    _attempts(cost(_hub(), run_id))


@hub_commands.models_app.command("cost")
def model_cost(spec: Annotated[str, typer.Argument(help="NAME or NAME:VERSION")]) -> None:
    """What the run that trained a model version cost (through its lineage)."""
    from oar.jobs.ledger import model_cost as cost
    from oar.serve.repository import parse_model_spec

    name, version = parse_model_spec(spec)
    run_id, summary = cost(_hub(), name, version)
    console.print(f"model {spec}: run {run_id or '(none recorded)'}")
    _attempts(summary)
