"""Kernel specs every user's JupyterLab lists: "Python (oar, PyTorch)", and "Python (PaddlePaddle)"
when the Paddle environment exists (``make paddle-env``) with ipykernel in it.

They are written under ``<home_root>/.kernels`` (root-owned, world-readable) and found through
``JUPYTER_PATH``; the kernels run this Python, so ``import oar`` works as it does for the studio.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

OAR_KERNEL = "oar-python"
PADDLE_KERNEL = "paddle-python"


def oar_source_path() -> str | None:
    """The folder to put on ``PYTHONPATH`` when oar runs from a source tree rather than site-packages."""
    package = Path(__file__).resolve().parents[1]
    return None if "site-packages" in package.parts else str(package.parent)


def write_kernel_specs(home_root: Path) -> Path:
    """Write the specs; returns the ``JUPYTER_PATH`` entry that holds them."""
    share = home_root / ".kernels"
    env = {"PYTHONPATH": source} if (source := oar_source_path()) else {}
    _spec(share, OAR_KERNEL, "Python (oar, PyTorch)", sys.executable, env)
    paddle = Path(sys.prefix) / "paddle" / "bin" / "python"
    if paddle.exists() and any(Path(sys.prefix, "paddle", "lib").glob("python3*/site-packages/ipykernel")):
        _spec(share, PADDLE_KERNEL, "Python (PaddlePaddle)", str(paddle), {})
    _server_config(share / "config")
    for folder in (home_root, share, share / "kernels", share / "config", *sorted((share / "kernels").iterdir())):
        os.chmod(folder, 0o755)
    return share


def _server_config(folder: Path) -> None:
    """What every user's JupyterLab runs with: the save limit, the busy-kernel activity mark, our kernel first."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "ServerApp": {"jpserver_extensions": {"oar.notebooks.activity": True}},
        "ContentsManager": {"pre_save_hook": "oar.notebooks.limits.refuse_large_notebooks"},
        "MappingKernelManager": {"default_kernel_name": OAR_KERNEL},
        "KernelSpecManager": {"ensure_native_kernel": False},
    }
    (folder / "jupyter_server_config.json").write_text(json.dumps(config, indent=1))
    os.chmod(folder / "jupyter_server_config.json", 0o644)
    # no "Jupyter news" prompt: it polls the internet, which an air-gapped studio does not reach
    (folder / "labconfig").mkdir(exist_ok=True)
    page = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
    (folder / "labconfig" / "page_config.json").write_text(json.dumps(page))
    os.chmod(folder / "labconfig", 0o755)
    os.chmod(folder / "labconfig" / "page_config.json", 0o644)


def _spec(share: Path, name: str, display: str, python: str, env: dict[str, str]) -> None:
    folder = share / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": display,
        "language": "python",
        "env": env,
        "metadata": {"debugger": True},
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    os.chmod(folder / "kernel.json", 0o644)
