"""The protocol-neutral data plane: what every front end (REST today, gRPC next) calls.

Front ends translate wire formats to these calls and ``OarError``s to their
status codes; nothing here knows about HTTP.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from oar import __version__
from oar._core.errors import InvalidInputError
from oar.protocol import InferRequest
from oar.serve.repository import LoadedModel, ModelRepository

SERVER_NAME = "oar"
EXTENSIONS: list[str] = []


class DataPlane:
    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return bool(self.repository.models())

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def model_ready(self, name: str, version: str | None = None) -> bool:
        self.repository.get(name, version)  # raises ModelNotFoundError
        return True

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self.repository.get(name, version)
        versions = sorted(m.version for m in self.repository.models() if m.name == name)
        manifest = model.manifest
        return {
            "name": name,
            "versions": [str(v) for v in versions],
            "platform": "onnxruntime_onnx",
            "inputs": [t.model_dump() for t in manifest.inputs],
            "outputs": [t.model_dump() for t in manifest.outputs],
            "parameters": {"task": manifest.task, "labels": manifest.labels, "version": str(model.version)},
        }

    def infer(self, name: str, version: str | None, request: InferRequest) -> tuple[LoadedModel, dict[str, np.ndarray]]:
        model = self.repository.get(name, version)
        outputs = model.runtime.infer(request.inputs)
        if request.outputs is not None:
            unknown = [o.name for o in request.outputs if o.name not in outputs]
            if unknown:
                raise InvalidInputError(
                    f"model '{name}' has no output {', '.join(unknown)}; outputs: {', '.join(outputs)}"
                )
            outputs = {o.name: outputs[o.name] for o in request.outputs}
        return model, outputs
