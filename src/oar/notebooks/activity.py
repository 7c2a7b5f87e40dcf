"""Runs inside each user's JupyterLab (a server extension): a busy kernel counts as activity.

jupyter_server reports the time of the last kernel message; a kernel that computes silently for an
hour would look idle, and the idle culler would stop it. Every ``$OAR_NOTEBOOK_BUSY_EVERY`` seconds
(a quarter of the idle timeout, at most 30 s) this marks the server active while any kernel is busy,
through jupyter_server's ``*_last_activity`` settings hook.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from tornado.ioloop import PeriodicCallback

SETTING = "oar_busy_kernel_last_activity"
BUSY_ENV = "OAR_NOTEBOOK_BUSY_EVERY"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "oar.notebooks.activity"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    settings = serverapp.web_app.settings
    kernels = serverapp.kernel_manager

    def mark_busy() -> None:
        states = (getattr(kernels.get_kernel(k), "execution_state", "") for k in kernels.list_kernel_ids())
        if any(state == "busy" for state in states):
            settings[SETTING] = datetime.now(UTC)

    every = min(30.0, float(os.environ.get(BUSY_ENV, "30")))
    PeriodicCallback(mark_busy, every * 1000).start()
