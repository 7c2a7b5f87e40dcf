"""What ``oar jobs submit | cancel`` do, without the command line: validate, record the run, enqueue.

Everything that can be checked at submission is checked then (the YAML, the training sections as
``oar train`` checks them, the pool, whether any node of the pool can ever hold the workers asked
for), so a bad job is refused with one clear message instead of failing in the queue later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oar._core.errors import InvalidInputError, OarError
from oar.hub import Hub
from oar.jobs.entities import ACTIVE, WAITING, Job
from oar.jobs.kinds import is_fewshot_job
from oar.jobs.pools import Pools
from oar.jobs.spec import Resources, parse_resources, read_job_file
from oar.jobs.store import JobStore


def check_fits(resources: Resources, pools: Pools, spans_nodes: bool) -> None:
    pool = pools.get(resources.pool)
    per_node = pool.node_cpus // resources.cpus
    most = per_node * (pool.max_nodes if spans_nodes else 1)
    low = resources.workers[0]
    if low > most:
        where = (
            f"{pool.max_nodes} nodes of {pool.node_cpus} CPUs" if spans_nodes else f"one node of {pool.node_cpus} CPUs"
        )
        raise InvalidInputError(
            f"resources ask for {low} worker(s) of {resources.cpus} CPU(s), but pool '{pool.name}' can never give "
            f"more than {most} ({where}); lower resources.workers or use a larger pool"
        )


def submit(
    path: str | Path,
    hub: Hub,
    pools: Pools,
    overrides: dict[str, Any] | None = None,
    cluster: str = "local",
    spans_nodes: bool = False,
) -> Job:
    """Validate ``path`` (an ``oar train`` YAML file plus ``resources:``), record its run and enqueue it.

    A file with a ``fewshot:`` section instead is a job of kind ``fewshot`` (``oar.fewshot.job``).
    """
    from oar.pipelines.train_job import start_run  # torch: only on submission
    from oar.train.job import parse_job

    training, raw_resources = read_job_file(path)
    if is_fewshot_job(training):
        return _submit_fewshot(path, training, raw_resources, hub, pools, overrides, cluster, spans_nodes)
    job_config = parse_job(training, str(path))
    resources = parse_resources(raw_resources, overrides or {}, str(path))
    check_fits(resources, pools, spans_nodes)
    if resources.max_preemptions is not None or resources.deadline is not None:
        check_fits(resources.model_copy(update={"pool": pools.on_demand}), pools, spans_nodes)
    if job_config.trainer.checkpoint.every_steps is None and job_config.trainer.checkpoint.every_seconds is None:
        raise InvalidInputError(
            f"{path}: trainer.checkpoint.every_steps (or every_seconds) is needed: a preempted job resumes "
            "from its last checkpoint"
        )
    run = start_run(job_config, hub)
    hub.runs.update(run.id, status="queued")
    return JobStore.open(hub).submit(
        name=job_config.name,
        user=resources.user,
        priority=resources.priority,
        pool=resources.pool,
        workers_min=resources.workers[0],
        workers_max=resources.workers[1],
        cpus=resources.cpus,
        retries=resources.retries,
        run_id=run.id,
        spec=resources.model_dump(mode="json"),
        deadline=resources.deadline,
        cluster=cluster,
    )


def _submit_fewshot(
    path: str | Path,
    training: dict[str, Any],
    raw_resources: dict[str, Any],
    hub: Hub,
    pools: Pools,
    overrides: dict[str, Any] | None,
    cluster: str,
    spans_nodes: bool,
) -> Job:
    """A few-shot job: one process, no checkpoints (minutes of work; a preempted attempt starts over)."""
    from oar.fewshot.job import JOB_KIND, start_fewshot_run  # torch: only on submission

    resources = parse_resources(raw_resources, overrides or {}, str(path))
    if resources.workers != (1, 1):
        raise InvalidInputError(f"{path}: a few-shot job runs in one process; resources.workers must be 1")
    check_fits(resources, pools, spans_nodes)
    run = start_fewshot_run(training, hub, str(path))
    return JobStore.open(hub).submit(
        name=str(run.config["model_name"])[:100],
        user=resources.user,
        priority=resources.priority,
        pool=resources.pool,
        workers_min=1,
        workers_max=1,
        cpus=resources.cpus,
        retries=resources.retries,
        run_id=run.id,
        spec={**resources.model_dump(mode="json"), "kind": JOB_KIND},
        deadline=resources.deadline,
        cluster=cluster,
    )


def cancel(job_id: str, hub: Hub) -> Job:
    """A waiting job is cancelled now; a running one is asked to checkpoint and stop (the scheduler does it)."""
    store = JobStore.open(hub)
    job = store.get(job_id)
    if job.done:
        raise OarError(f"job {job.id} already {job.state}")
    if job.state in WAITING:
        moved = store.transition(job.id, {job.state}, "cancelled", "cancelled before it was placed")
        if moved is not None:
            return moved
        job = store.get(job.id)
    if job.state in ACTIVE or job.state == "preempted":
        store.note(job.id, "cancel requested", cancel_requested=True)
    return store.get(job.id)
