"""Runs as the hub's idle-culler service: jupyterhub-idle-culler, ended when its hub dies.

JupyterHub starts services in their own session, so a hub killed with SIGKILL (a crash) would leave
its culler running beside the next hub's. ``PR_SET_PDEATHSIG`` asks Linux to send this process
SIGTERM when its parent, the hub, exits for any reason.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the hub died before the line above ran
            sys.exit(0)
    from jupyterhub_idle_culler import main as cull

    cull()


if __name__ == "__main__":
    main()
