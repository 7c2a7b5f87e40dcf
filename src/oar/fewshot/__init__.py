"""Few-shot text classification: K labelled examples per class, SetFit-style, to a served package.

>>> from oar.fewshot import train_fewshot
>>> result = train_fewshot("rotten-tomatoes", shots=8, seed=0)
>>> result.model_id, result.test_accuracy, result.package_path

Importing this package is light; ``train_fewshot`` imports torch and transformers when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oar.fewshot.contrastive import FewShotRecipe
    from oar.fewshot.train import FewShotResult, train_fewshot

__all__ = ["FewShotRecipe", "FewShotResult", "train_fewshot"]


def __getattr__(name: str) -> Any:
    if name in ("FewShotResult", "train_fewshot"):
        from oar.fewshot import train

        return getattr(train, name)
    if name == "FewShotRecipe":
        from oar.fewshot.contrastive import FewShotRecipe

        return FewShotRecipe
    raise AttributeError(f"module 'oar.fewshot' has no attribute {name!r}")
