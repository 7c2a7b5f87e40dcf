"""Runs inside each user's JupyterLab: a save above the size limit is refused with a message.

Configured as the contents manager's ``pre_save_hook``; jupyter_server lets an ``HTTPError`` raised
there reach the browser, which shows its message in a dialog. The unsaved notebook stays open.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tornado.web import HTTPError

LIMIT_ENV = "OAR_NOTEBOOK_MAX_MB"


def refuse_large_notebooks(model: dict[str, Any], path: str, **_: Any) -> None:
    if model.get("type") != "notebook" or model.get("content") is None:
        return
    limit_mb = float(os.environ.get(LIMIT_ENV, "20"))
    size = len(json.dumps(model["content"]).encode())
    if size > limit_mb * 1e6:
        message = (
            f"{path} is {size / 1e6:.1f} MB, over the {limit_mb:g} MB limit: clear large outputs "
            "(Edit > Clear Outputs of All Cells) and save again"
        )
        raise HTTPError(413, message, reason="Notebook too large")
