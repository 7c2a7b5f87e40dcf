"""What an attempt runs: ``python -m oar.jobs.worker RUN_ID [--nproc N]`` (one rank, or N under torchrun).

It is ``oar.pipelines.train_job``'s worker plus a progress file for the ledger: the step the attempt
started from, the last step it reached, its last checkpoint and the seconds spent writing checkpoints,
rewritten atomically (main rank only) at every logged step and checkpoint, so a hard-killed attempt
still tells how much work it loses. The file's path comes in ``OAR_JOB_PROGRESS``. A kill can fall
between a checkpoint's rename and the file's update, so the scheduler settles the work lost by a
killed attempt when the next one reports the step it resumed from.

Exit codes are ``oar train``'s: 0 finished, 75 preempted after a checkpoint, anything else a failure.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from oar.jobs.progress import PROGRESS_ENV
from oar.pipelines import train_job
from oar.train import Trainer
from oar.train.preemption import EXIT_PREEMPTED


class ProgressRecorder(train_job.HubRecorder):
    """The hub recorder, also keeping the attempt's progress file current."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = Path(os.environ[PROGRESS_ENV]) if os.environ.get(PROGRESS_ENV) else None
        self.progress: dict[str, Any] = {"start_step": 0, "step": 0, "checkpoint_step": 0, "checkpoint_seconds": 0.0}

    def on_fit_start(self, trainer: Trainer, record: dict[str, Any]) -> None:
        step = int(record.get("step") or 0)
        total = record.get("total_steps")
        self._write(start_step=step, step=step, checkpoint_step=step, total_steps=total, fit_started_at=time.time())
        _say(f"training from step {step} of {total}" + (" (resumed from its checkpoint)" if step else ""))

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self._write(step=int(record["step"]))  # before the hub's (slower) write: a kill may come any time
        super().on_step_end(trainer, record)
        _say(progress_line(record, self.progress.get("total_steps")))

    def on_evaluate(self, trainer: Trainer, record: dict[str, Any]) -> None:
        super().on_evaluate(trainer, record)
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(record.items()) if k != "step" and _number(v))
        _say(f"step {record.get('step')}: {metrics}")

    def on_checkpoint(self, trainer: Trainer, record: dict[str, Any]) -> None:
        spent = self.progress["checkpoint_seconds"] + float(record.get("seconds", 0.0))
        self._write(step=int(record["step"]), checkpoint_step=int(record["step"]), checkpoint_seconds=spent)
        super().on_checkpoint(trainer, record)
        _say(f"checkpoint at step {record['step']} ({float(record.get('seconds', 0.0)):.2f} s)")

    def _write(self, **values: Any) -> None:
        self.progress.update(values)
        if self.path is None:
            return
        staging = self.path.with_name(self.path.name + ".tmp")
        staging.write_text(json.dumps(self.progress))
        os.replace(staging, self.path)


def progress_line(record: dict[str, Any], total: int | None) -> str:
    """One plain line per logged step for the job's log (``oar jobs logs -f``): no bar, no terminal codes."""
    parts = [f"step {record['step']}" + (f"/{total}" if total else "")]
    if record.get("epoch") is not None:
        parts.append(f"epoch {record['epoch']}")
    if _number(record.get("train_loss")):
        parts.append(f"loss {record['train_loss']:.4f}")
    if _number(record.get("samples_per_s")):
        parts.append(f"{record['samples_per_s']:.0f} samples/s")
    return ", ".join(parts)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _say(line: str) -> None:
    print(line, flush=True)  # stdout is the job's log file


def _launch(run_id: str, nproc: int) -> int:
    """``nproc`` ranks of this module on this machine under torchrun; 75 if the run was preempted."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    from oar.hub import Hub

    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "--module", "oar.jobs.worker", run_id]
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        torchrun(args)
    except (SignalException, ChildFailedError) as exc:
        preempted = Hub().runs.get(run_id).status == "preempted"
        print(f"workers stopped: {exc}", file=sys.stderr)
        return EXIT_PREEMPTED if preempted else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[1] == "--nproc" and int(args[2]) > 1:
        return _launch(args[0], int(args[2]))
    train_job.HubRecorder = ProgressRecorder  # type: ignore[misc]  # execute() builds the recorder by this name
    return train_job.main(args[:1])


if __name__ == "__main__":
    sys.exit(main())
