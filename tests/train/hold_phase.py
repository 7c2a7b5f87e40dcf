"""``python hold_phase.py PHASE OAR-ARGS...``: ``oar OAR-ARGS...`` held at phase PHASE until SIGTERM.

A test-only runner: it installs a phase observer that prints ``oar-train-phase: PHASE`` on stderr when
the process enters that phase and waits there (at most 60 s) for the signal, so a test can deliver it
at exactly that moment. Production code only offers ``PreemptionWatch.phase_observers``.
"""

from __future__ import annotations

import sys
import time

from oar.train.preemption import PreemptionWatch

HOLD_MAX_S = 60.0


def holder(phase: str):  # type: ignore[no-untyped-def]
    def hold(name: str, watch: PreemptionWatch) -> None:
        if name != phase:
            return
        print(f"oar-train-phase: {name}", file=sys.stderr, flush=True)
        until = time.monotonic() + HOLD_MAX_S
        while not watch.requested and time.monotonic() < until:
            time.sleep(0.01)

    return hold


if __name__ == "__main__":
    PreemptionWatch.phase_observers.append(holder(sys.argv[1]))
    sys.argv = ["oar", *sys.argv[2:]]
    from oar.cli.main import main

    main()
