"""``oar.enable_static()`` / ``oar.disable_static()``: the default graph mode (as ``paddle.enable_static``).

In static mode the ``Trainer`` compiles its training step with ``torch.compile``
(and falls back to dynamic, saying why, when compiling fails or is slower).
``Trainer(..., mode="dynamic"|"static")`` overrides the default for one run.
``OAR_STATIC=1`` in the environment starts a process in static mode.

>>> import oar
>>> oar.enable_static()
>>> oar.in_static_mode()
True
"""

from __future__ import annotations

import os

__all__ = ["default_mode", "disable_static", "enable_static", "in_static_mode"]

_static = os.environ.get("OAR_STATIC", "") not in ("", "0", "false")


def enable_static() -> None:
    """Train everything that follows in static (compiled) mode."""
    global _static
    _static = True


def disable_static() -> None:
    """Back to dynamic (eager) mode, the default."""
    global _static
    _static = False


def in_static_mode() -> bool:
    return _static


def default_mode() -> str:
    return "static" if _static else "dynamic"
