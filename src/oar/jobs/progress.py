"""What an attempt tells the scheduler through files, without importing the trainer (or torch).

``oar.jobs.worker`` writes ``progress.json`` at the path in ``OAR_JOB_PROGRESS``; the scheduler and the
ledger read it. ``EXIT_PREEMPTED`` is ``oar.train.preemption.EXIT_PREEMPTED`` (a test holds them equal),
repeated here so that the scheduler and the Ray actors start without loading torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROGRESS_ENV = "OAR_JOB_PROGRESS"
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: preempted after writing a checkpoint


def read_progress(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
