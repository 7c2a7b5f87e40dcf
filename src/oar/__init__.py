"""oar: a self-hostable, full-chain AI development platform.

The top level is small and cheap to import: heavy parts (torch, the server)
load only when first touched.

>>> from oar import ModelClient
>>> ModelClient("http://127.0.0.1:8500").predict(model_id="chnsenti-cls", inputs={"text": "质量很好"})
{'label': 'positive', 'score': 0.97}
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "Hub",
    "ModelClient",
    "Trainer",
    "TrainerConfig",
    "__version__",
    "disable_static",
    "enable_static",
    "in_static_mode",
    "jit",
]

_LAZY = {
    "ModelClient": ("oar.client", "ModelClient"),
    "Hub": ("oar.hub", "Hub"),
    "Trainer": ("oar.train", "Trainer"),
    "TrainerConfig": ("oar.train", "TrainerConfig"),
    "jit": ("oar.jit", None),
    "enable_static": ("oar.static", "enable_static"),
    "disable_static": ("oar.static", "disable_static"),
    "in_static_mode": ("oar.static", "in_static_mode"),
}

if TYPE_CHECKING:
    from oar import jit
    from oar.client import ModelClient
    from oar.hub import Hub
    from oar.static import disable_static, enable_static, in_static_mode
    from oar.train import Trainer, TrainerConfig


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'oar' has no attribute '{name}'") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
