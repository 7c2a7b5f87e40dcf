"""Pick the runtime for a package by its task (text-to-image imports torch, and only then)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Union

from oar._core.errors import OarError
from oar.package import ModelPackage
from oar.runtime.generic import GenericOnnxRuntime
from oar.runtime.image_classifier import ImageClassifierRuntime
from oar.runtime.text_classifier import TextClassifierRuntime

if TYPE_CHECKING:
    from oar.runtime.text_to_image import TextToImageRuntime

# A forward reference: the text-to-image runtime's module imports torch, which the ONNX runtimes never do.
Runtime = Union[TextClassifierRuntime, ImageClassifierRuntime, GenericOnnxRuntime, "TextToImageRuntime"]


def load_runtime(package: ModelPackage | str | Path, intra_op_threads: int = 0) -> Runtime:
    if not isinstance(package, ModelPackage):
        package = ModelPackage.open(package)
    if package.manifest.task == "text-to-image" and package.manifest.runtime.engine == "diffusers":
        from oar.runtime.text_to_image import TextToImageRuntime  # torch and diffusers: only for these packages

        return TextToImageRuntime(package, intra_op_threads)
    if package.manifest.runtime.engine != "onnxruntime":
        raise OarError(
            f"package {package.model_id} is a {package.manifest.runtime.engine} artifact for PyTorch users; "
            "serve its ONNX version instead"
        )
    if package.manifest.task == "text-classification":
        return TextClassifierRuntime(package, intra_op_threads)
    if package.manifest.task == "image-classification":
        return ImageClassifierRuntime(package, intra_op_threads)
    if package.manifest.task == "generic":
        return GenericOnnxRuntime(package, intra_op_threads)
    raise OarError(f"package {package.model_id} has task '{package.manifest.task}', which oar cannot serve yet")
