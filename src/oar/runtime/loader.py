"""Pick the runtime for a package by its task."""

from __future__ import annotations

from pathlib import Path

from oar._core.errors import OarError
from oar.package import ModelPackage
from oar.runtime.text_classifier import TextClassifierRuntime


def load_runtime(package: ModelPackage | str | Path, intra_op_threads: int = 0) -> TextClassifierRuntime:
    if not isinstance(package, ModelPackage):
        package = ModelPackage.open(package)
    if package.manifest.task == "text-classification":
        return TextClassifierRuntime(package, intra_op_threads)
    raise OarError(f"package {package.model_id} has task '{package.manifest.task}', which oar cannot serve yet")
