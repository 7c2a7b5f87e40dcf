"""The notebooks "Open in notebook" writes: code that loads a dataset version, queries a model version,
or calls a deployment, through the studio with the kernel's own token (``OAR_STUDIO_URL``/``_TOKEN``)."""

from __future__ import annotations

import json
import re
from typing import Any

KERNELSPEC = {"name": "oar-python", "display_name": "Python (oar, PyTorch)", "language": "python"}
CONNECT = """import os

import httpx

# The studio this notebook belongs to, with your own token: you see and do here what you may on its pages.
studio = httpx.Client(
    base_url=os.environ["OAR_STUDIO_URL"] + "/api/v1",
    headers={"authorization": "Bearer " + os.environ["OAR_STUDIO_TOKEN"]},
    timeout=120,
)"""


def dataset_notebook(name: str, version: int) -> dict[str, Any]:
    return _notebook(
        f"# Dataset {name}:{version}\nIts card, splits and sample rows, from the studio.",
        CONNECT,
        f"""import pandas as pd

card = studio.get("/datasets/{name}/versions/{version}").raise_for_status().json()
print({{k: card[k] for k in card if k not in ("card",)}})
samples = studio.get("/datasets/{name}/versions/{version}/samples", params={{"limit": 20}}).raise_for_status().json()
pd.DataFrame(samples["items"])""",
    )


def model_notebook(name: str, version: int, example: dict[str, Any]) -> dict[str, Any]:
    return _notebook(
        f"# Model {name}:{version}\nIts manifest, then a deployment of this version on the studio, queried with "
        "`ModelClient` and removed at the end.",
        CONNECT,
        f"""model = studio.get("/models/{name}/versions/{version}").raise_for_status().json()
print(model["model_id"], model.get("task"), model.get("metrics"))""",
        f"""import time

deployment = studio.post("/deployments", json={{"model": "{name}:{version}"}}).raise_for_status().json()
while deployment["status"] in ("starting", "backoff"):
    time.sleep(0.5)
    deployment = studio.get(f"/deployments/{{deployment['id']}}").raise_for_status().json()
print(deployment["status"], deployment["endpoint"])""",
        _call_cell(example) + "\nstudio.delete(f\"/deployments/{deployment['id']}\")",
    )


def deployment_notebook(deployment_id: str, model: str, example: dict[str, Any]) -> dict[str, Any]:
    return _notebook(
        f"# Deployment {deployment_id} ({model})\nCall it with `ModelClient`, with its bearer token.",
        CONNECT,
        f"""deployment = studio.get("/deployments/{deployment_id}").raise_for_status().json()
print(deployment["status"], deployment["endpoint"])""",
        _call_cell(example),
    )


def slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-")[:80] or "notebook"


def _call_cell(example: dict[str, Any]) -> str:
    return f"""import numpy as np

from oar.client import ModelClient

token = studio.get(f"/deployments/{{deployment['id']}}/token").raise_for_status().json()["token"]
model_id = f"{{deployment['model']}}:{{deployment['version']}}"
example = {json.dumps(example, ensure_ascii=False)}
with ModelClient(deployment["endpoint"], token=token) as client:
    if all(isinstance(v[0], str) for v in example.values()):
        prediction = client.predict(model_id=model_id, inputs=example)
    else:
        prediction = client.infer(model_id, {{k: np.asarray(v, dtype=np.float32) for k, v in example.items()}})
print("prediction:", prediction)"""


def _notebook(title: str, *code: str) -> dict[str, Any]:
    cells = [{"cell_type": "markdown", "id": "title", "metadata": {}, "source": title}]
    for i, source in enumerate(code):
        cells.append(
            {
                "cell_type": "code",
                "id": f"c{i}",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
        )
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "oar-python", "display_name": "Python (oar, PyTorch)", "language": "python"}
        },
        "cells": cells,
    }
