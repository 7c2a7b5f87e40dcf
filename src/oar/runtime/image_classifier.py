"""Image (or any tensor) classification runtime: one tensor in; ``label``, ``score``, ``probabilities`` out.

The package's graph takes one tensor (``[batch, channels, height, width]`` float images for the vision
models) and returns ``[batch, classes]``: logits (softmax applied here) or probabilities already
(``runtime.output_activation == "none"``, recorded when the package was written).
"""

from __future__ import annotations

import numpy as np

from oar._core.errors import InvalidInputError, OarError
from oar.package import ModelPackage
from oar.runtime.custom_ops import op_libraries
from oar.runtime.generic import checked_tensor, run_checked
from oar.runtime.session import create_session


class ImageClassifierRuntime:
    """``ImageClassifierRuntime(ModelPackage.open(path)).infer({"image": x})`` -> label, score, probabilities."""

    def __init__(self, package: ModelPackage, intra_op_threads: int = 0) -> None:
        manifest = package.manifest
        if len(manifest.runtime.graph_inputs) != 1 or not manifest.labels:
            raise OarError(f"package {package.model_id}: an image classifier takes one tensor and has labels")
        self.package = package
        self.labels = manifest.labels
        self.input = manifest.runtime.graph_inputs[0]
        self._label_array = np.array([label.encode() for label in manifest.labels], dtype=object)
        self.session = create_session(
            package.file(manifest.runtime.model_file), intra_op_threads, custom_op_libraries=op_libraries(package)
        )
        self._output_name = manifest.runtime.graph_outputs[0].name
        self._activation = manifest.runtime.output_activation

    def logits(self, images: np.ndarray) -> np.ndarray:
        """The graph's raw ``[batch, classes]`` output for ``images`` (checked against the signature)."""
        feeds = {self.input.name: checked_tensor(self.input, images)}
        return run_checked(self.session, [self._output_name], feeds)[0]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if inputs.keys() != {self.input.name}:
            raise InvalidInputError(
                f"expected exactly one input named '{self.input.name}', got: {', '.join(inputs) or 'none'}"
            )
        raw = self.logits(inputs[self.input.name])
        probabilities = _softmax(raw) if self._activation == "softmax" else raw.astype(np.float32, copy=False)
        best = probabilities.argmax(axis=1)
        return {
            "label": self._label_array[best],
            "score": probabilities[np.arange(len(best)), best],
            "probabilities": probabilities,
        }


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
