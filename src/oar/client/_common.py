"""Shared by ``ModelClient`` and ``AsyncModelClient``, no I/O: request building, decoding, errors, retry policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oar._core.errors import (
    ForbiddenError,
    InvalidInputError,
    ModelNotFoundError,
    OarError,
    OverloadedError,
    PayloadTooLargeError,
    UnauthorizedError,
)
from oar.protocol.datatypes import datatype_of, numpy_dtype

ERRORS_BY_STATUS: dict[int, type[OarError]] = {
    400: InvalidInputError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: ModelNotFoundError,
    405: InvalidInputError,
    413: PayloadTooLargeError,
    503: OverloadedError,
}


@dataclass(frozen=True)
class RetryPolicy:
    """Inference has no side effects, so a shed request (503) is retried after an exponential backoff."""

    attempts: int = 4
    backoff_s: float = 0.05
    max_backoff_s: float = 1.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff_s * 2**attempt, self.max_backoff_s)


def read_ca_cert(ca_cert: str | Path | None, scheme: str) -> bytes | None:
    """The PEM of ``ca_cert`` (certificates to trust instead of the system's), checked against the scheme."""
    if ca_cert is None:
        return None
    if scheme not in ("https", "grpcs"):
        raise InvalidInputError(f"ca_cert is for https:// and grpcs:// endpoints, not {scheme}://")
    try:
        pem = Path(ca_cert).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read ca_cert {ca_cert}: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidInputError(f"ca_cert {ca_cert} holds no PEM certificate")
    return pem


def split_model_id(model_id: str, version: str | int | None) -> tuple[str, str | None]:
    """``"name"`` / ``"name:3"`` (or an explicit ``version``) -> (name, version or None for the latest)."""
    name, _, id_version = model_id.partition(":")
    chosen = version if version is not None else (id_version or None)
    return name, None if chosen is None else str(chosen)


def texts_of(inputs: Any) -> tuple[list[str], bool]:
    """The seed-style ``inputs={"text": str | list[str]}`` -> (texts, whether one text was given)."""
    text = inputs.get("text") if isinstance(inputs, dict) else None
    if not isinstance(inputs, dict) or set(inputs) != {"text"}:
        raise InvalidInputError("predict() takes inputs={'text': str | list[str]}")
    single = isinstance(text, str)
    texts = [text] if single else text
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidInputError("inputs['text'] must be a string or a non-empty list of strings")
    return texts, single


def prompt_of(inputs: Any) -> str | None:
    """The prompt of a text-to-image ``inputs={"prompt": str}``; None when ``inputs`` is not one."""
    if not isinstance(inputs, dict) or set(inputs) != {"prompt"}:
        return None
    prompt = inputs["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInputError("inputs['prompt'] must be a non-empty string")
    return prompt


def prompt_tensor(prompt: str) -> dict[str, np.ndarray]:
    return {"prompt": np.array([prompt.encode()], dtype=object)}


def generation_parameters(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """The request's settings (steps, guidance, seed, width, height), the PNG asked for as binary data."""
    return {**(parameters or {}), "binary_data_output": True}


def image_of(outputs: dict[str, np.ndarray]) -> bytes:
    """The PNG bytes of a text-to-image answer."""
    value = outputs["image"].ravel()[0]
    return value if isinstance(value, bytes) else bytes(value)


def text_tensor(texts: list[str]) -> dict[str, np.ndarray]:
    return {"text": np.array([t.encode() for t in texts], dtype=object)}


def predictions(outputs: dict[str, np.ndarray], single: bool) -> dict[str, Any] | list[dict[str, Any]]:
    results = [
        {"label": label.decode() if isinstance(label, bytes) else str(label), "score": float(score)}
        for label, score in zip(outputs["label"], outputs["score"], strict=True)
    ]
    return results[0] if single else results


def encode_json_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    datatype = datatype_of(array)
    if datatype == "BYTES":
        data = [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel()]
    else:
        data = array.ravel().tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def decode_json_tensor(tensor: dict[str, Any]) -> np.ndarray:
    if tensor["datatype"] == "BYTES":
        array = np.empty(len(tensor["data"]), dtype=object)
        array[:] = [v.encode() for v in tensor["data"]]
        return array.reshape(tensor["shape"])
    return np.asarray(tensor["data"], dtype=numpy_dtype(tensor["datatype"])).reshape(tensor["shape"])


def rest_path(name: str, version: str | None, action: str | None = None) -> str:
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version is not None else "")
    return path + (f"/{action}" if action else "")
