"""``oar train CONFIG.yaml`` / ``oar train --resume RUN`` [``--nproc N``].

Exit codes: 0 finished (and, for text and ctr runs, registered); 1 bad input (one red line); 75
preempted by SIGTERM at any phase, with everything done so far checkpointed, so
``oar train --resume RUN`` continues it (``EX_TEMPFAIL``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from oar._core.errors import InvalidInputError, OarError
from oar.hub import Hub, Run

console = Console()
err = Console(stderr=True)


def train(
    config: Annotated[Path | None, typer.Argument(help="YAML job: data, model, trainer (see docs/training.md)")] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="continue run RUN from its newest valid checkpoint")
    ] = None,
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="data-parallel processes (torchrun, gloo)")] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show the progress bar")] = True,
    register: Annotated[
        bool,
        typer.Option("--register/--no-register", help="new runs: export, parity-check and register the model"),
    ] = True,
) -> None:
    """Train a model from a YAML job; the run, its curves, checkpoints, weights and model go to the hub."""
    from oar.train.preemption import EXIT_PREEMPTED, PreemptionWatch, TrainingPreempted  # light: no torch

    if (config is None) == (resume is None):
        raise InvalidInputError("give CONFIG.yaml to start a run, or --resume RUN to continue one (not both)")
    run_id = resume
    with PreemptionWatch() as watch:  # SIGTERM from here on leaves the run resumable (exit 75)
        try:
            watch.phase("startup")
            run = _train(config, resume, nproc, progress, register)
        except TrainingPreempted as exc:
            run_id = exc.run_id or run_id
            where = f"at step {exc.step}" if exc.phase == "train" else f"before {exc.phase}"
            err.print(f"[yellow]preempted[/] {where}; continue with: oar train --resume {run_id}")
            raise typer.Exit(EXIT_PREEMPTED) from None
    if run is not None:
        _print_summary(run)


def _train(config: Path | None, resume: str | None, nproc: int, progress: bool, register: bool) -> Run | None:
    from oar.pipelines.train_job import execute, run_dir, start_run  # torch: only when training
    from oar.train.job import load_job
    from oar.train.preemption import TrainingPreempted

    hub = Hub()
    if config is not None:
        job = load_job(config)
        job.register_model = job.register_model and register
        run = start_run(job, hub)
    else:
        run = hub.runs.get(resume or "")
    if resume and run.status == "finished":
        console.print(f"run {run.id} already finished; see `oar runs show {run.id}`")
        return None
    console.print(f"run [bold]{run.id}[/] in {run_dir(hub, run.id)}" + (" (resuming)" if resume else ""))
    try:
        return execute(run.id, hub, progress) if nproc == 1 else _launch(run.id, nproc, hub)
    except TrainingPreempted as exc:
        exc.run_id = exc.run_id or run.id
        raise

    except KeyboardInterrupt:
        err.print(f"interrupted: run {run.id} is recorded as interrupted; continue with: oar train --resume {run.id}")
        raise typer.Exit(130) from None


def _print_summary(run: Run) -> None:
    m = run.metrics
    console.print(
        f"finished {m.get('steps')} steps in {m.get('train_seconds', 0):.1f} s of training: "
        f"test accuracy {m.get('test_accuracy', float('nan')):.4f}"
        + (f", test AUC {m['test_auc']:.4f}" if m.get("test_auc") is not None else "")
        + f"; weights {m.get('weights')}",
        soft_wrap=True,
    )
    graph, precision = m.get("graph") or {}, m.get("precision") or {}
    if graph.get("requested") == "static":
        console.print(f"static mode: ran {graph.get('used')} ({graph.get('reason')})", soft_wrap=True)
    if precision and precision.get("used") != precision.get("requested"):
        console.print(
            f"precision: ran {precision.get('used')} instead of {precision.get('requested')} "
            f"({precision.get('reason')})",
            soft_wrap=True,
        )
    if m.get("model"):
        parity = m.get("parity") or {}
        console.print(
            f"registered [bold]{m['model']}[/]: parity max |Δ| {parity.get('max_abs_diff', float('nan')):.2e}, "
            f"argmax agreement {parity.get('argmax_agreement', float('nan')):.4f} on {parity.get('samples')} "
            f"samples; serve it: oar serve {str(m['model']).split(':')[0]}",
            soft_wrap=True,
        )
    elif m.get("register_skipped"):
        console.print(f"not registered: {m['register_skipped']}", soft_wrap=True)
    console.print(f"curves: oar runs show {run.id}", soft_wrap=True)


def _launch(run_id: str, nproc: int, hub: Hub) -> Run:
    """Start ``nproc`` workers with torchrun's elastic launcher on this machine and wait for them."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    from oar.train.preemption import EXIT_PREEMPTED, TrainingPreempted

    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "--module", "oar.pipelines.train_job", run_id]
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # what torchrun would set, without its warning
    try:
        torchrun(args)
    except SignalException as exc:  # the launcher got SIGTERM: it forwarded it and waited for the workers
        run = hub.runs.get(run_id)
        if run.status == "preempted":
            raise TrainingPreempted(int(run.metrics.get("preempted_at_step", -1)), None) from None
        raise OarError(f"training stopped by signal {exc.sigval}; run {run_id} is {run.status}") from None
    except ChildFailedError as exc:
        codes = sorted({failure.exitcode for failure in exc.failures.values()})
        run = hub.runs.get(run_id)
        if run.status == "preempted" or codes == [EXIT_PREEMPTED]:
            raise TrainingPreempted(int(run.metrics.get("preempted_at_step", -1)), None) from None
        raise OarError(f"training failed in a worker (exit codes {codes}); run {run_id} is {run.status}") from None
    return hub.runs.get(run_id)
