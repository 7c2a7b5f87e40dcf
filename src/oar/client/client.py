"""``ModelClient``: predictions from a served model in one call.

>>> client = ModelClient("http://127.0.0.1:8500")
>>> client.predict(model_id="chnsenti-cls", inputs={"text": "质量很好"})
{'label': 'positive', 'score': 0.98}
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import orjson

from oar._core.errors import (
    InvalidInputError,
    ModelNotFoundError,
    OarError,
    PayloadTooLargeError,
    ServerUnreachableError,
)
from oar.protocol.datatypes import datatype_of, numpy_dtype

_ERRORS_BY_STATUS: dict[int, type[OarError]] = {
    400: InvalidInputError,
    404: ModelNotFoundError,
    405: InvalidInputError,
    413: PayloadTooLargeError,
}


class ModelClient:
    """A keep-alive HTTP client for one server. Use as a context manager or call ``close()``."""

    def __init__(self, endpoint: str = "http://127.0.0.1:8500", timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._http = httpx.Client(base_url=self.endpoint, timeout=timeout)

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def predict(
        self, model_id: str, inputs: dict[str, Any], version: str | int | None = None
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Classify ``inputs["text"]``: one string gives one dict, a list of strings a list of dicts.

        ``model_id`` is ``"name"`` (latest version) or ``"name:version"``.
        """
        text = inputs.get("text") if isinstance(inputs, dict) else None
        if set(inputs or {}) != {"text"}:
            raise InvalidInputError("predict() takes inputs={'text': str | list[str]}")
        single = isinstance(text, str)
        texts = [text] if single else text
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidInputError("inputs['text'] must be a string or a non-empty list of strings")
        outputs = self.infer(model_id, {"text": np.array(texts, dtype=object)}, version=version)
        results = [
            {"label": label.decode() if isinstance(label, bytes) else str(label), "score": float(score)}
            for label, score in zip(outputs["label"], outputs["score"], strict=True)
        ]
        return results[0] if single else results

    def infer(
        self, model_id: str, inputs: dict[str, np.ndarray], version: str | int | None = None
    ) -> dict[str, np.ndarray]:
        """Send named tensors, get named tensors back (Open Inference Protocol v2, JSON)."""
        name, _, id_version = model_id.partition(":")
        version = version if version is not None else (id_version or None)
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version is not None else "") + "/infer"
        body = {"inputs": [_encode_tensor(key, np.asarray(value)) for key, value in inputs.items()]}
        response = self._request("POST", path, content=orjson.dumps(body))
        return {out["name"]: _decode_tensor(out) for out in response["outputs"]}

    def is_live(self) -> bool:
        try:
            return self._http.get("/v2/health/live").status_code == 200
        except httpx.TransportError:
            return False

    def is_ready(self, model_id: str | None = None) -> bool:
        path = "/v2/health/ready" if model_id is None else f"/v2/models/{model_id.replace(':', '/versions/')}/ready"
        try:
            return self._http.get(path).status_code == 200
        except httpx.TransportError:
            return False

    def metadata(self, model_id: str | None = None) -> dict[str, Any]:
        path = "/v2" if model_id is None else f"/v2/models/{model_id.replace(':', '/versions/')}"
        return self._request("GET", path)

    def _request(self, method: str, path: str, content: bytes | None = None) -> dict[str, Any]:
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            response = self._http.request(method, path, content=content, headers=headers)
        except httpx.ConnectError as exc:
            raise ServerUnreachableError(f"cannot reach an oar server at {self.endpoint}: {exc}") from None
        except httpx.TimeoutException:
            raise ServerUnreachableError(f"server at {self.endpoint} did not answer in time") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return orjson.loads(response.content)


def _error_from(response: httpx.Response) -> OarError:
    try:
        message = orjson.loads(response.content)["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    error_type = _ERRORS_BY_STATUS.get(response.status_code, OarError)
    return error_type(f"HTTP {response.status_code}: {message}")


def _encode_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    datatype = datatype_of(array)
    if datatype == "BYTES":
        data = [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel()]
    else:
        data = array.ravel().tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def _decode_tensor(tensor: dict[str, Any]) -> np.ndarray:
    if tensor["datatype"] == "BYTES":
        array = np.empty(len(tensor["data"]), dtype=object)
        array[:] = [v.encode() for v in tensor["data"]]
        return array.reshape(tensor["shape"])
    return np.asarray(tensor["data"], dtype=numpy_dtype(tensor["datatype"])).reshape(tensor["shape"])
