"""Runs in a tutorial's last cell: tells the studio this user ran the tutorial to the end.

In the studio's JupyterLab the kernel has ``OAR_STUDIO_URL`` and ``OAR_STUDIO_TOKEN`` (the user's own
token); anywhere else there is no studio to tell, and the call says so.
"""

from __future__ import annotations

import os

import httpx


def tutorial_done(name: str) -> bool:
    """Record ``name`` as done for the kernel's user; False (with a line saying why) when not in the studio."""
    url, token = os.environ.get("OAR_STUDIO_URL"), os.environ.get("OAR_STUDIO_TOKEN")
    if not (url and token):
        print(f"{name}: done (progress is recorded when this runs in the studio's JupyterLab)")
        return False
    try:
        answer = httpx.post(
            f"{url.rstrip('/')}/api/v1/notebooks/tutorials/{name}/done",
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        print(f"{name}: done, but the studio did not answer ({exc})")
        return False
    if answer.status_code != 200:
        print(f"{name}: done, but the studio refused to record it (HTTP {answer.status_code})")
        return False
    print(f"{name}: done, recorded in the studio's Learn list")
    return True
