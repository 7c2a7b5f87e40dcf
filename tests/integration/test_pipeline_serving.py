"""The spine end to end: a real trained model served by a real `oar serve` subprocess.

Queried with ModelClient and with raw HTTP; every bad input gets a 4xx with a
message, and the server keeps serving afterwards.
"""

import re

import httpx
import numpy as np
import pytest

from oar import ModelClient
from oar._core.errors import InvalidInputError, ModelNotFoundError, ServerUnreachableError
from oar.runtime import load_runtime
from oar.serve.process import free_port

TEXTS = ["质量很好，非常满意", "太差了，再也不买了"]


def infer_body(data, datatype="BYTES", shape=None, name="text"):
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}]}


def test_client_predicts_a_label_for_chinese_text(server, trained):
    with ModelClient(server.endpoint) as client:
        result = client.predict(model_id="chnsenti-smoke", inputs={"text": TEXTS[0]})
    assert result["label"] in trained.dataset.labels
    assert 0.5 <= result["score"] <= 1.0


def test_a_list_of_texts_gives_a_list_matching_the_local_runtime(server, trained):
    with ModelClient(server.endpoint) as client:
        results = client.predict(model_id="chnsenti-smoke:1", inputs={"text": TEXTS})
    local = load_runtime(trained.model.path).predict(TEXTS)
    assert [r["label"] for r in results] == local.labels
    np.testing.assert_allclose([r["score"] for r in results], local.scores, rtol=1e-5)


def test_raw_http_follows_the_open_inference_protocol(server):
    base = server.endpoint
    assert httpx.get(f"{base}/v2/health/live").status_code == 200
    assert httpx.get(f"{base}/v2/health/ready").status_code == 200
    assert httpx.get(f"{base}/v2").json()["name"] == "oar"
    meta = httpx.get(f"{base}/v2/models/chnsenti-smoke").json()
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == ["text"]
    assert httpx.get(f"{base}/v2/models/chnsenti-smoke/versions/1/ready").json()["ready"] is True
    response = httpx.post(f"{base}/v2/models/chnsenti-smoke/infer", json={**infer_body(TEXTS), "id": "req-7"})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "req-7" and body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["datatype"] == "BYTES" and outputs["label"]["shape"] == [2]
    assert outputs["probabilities"]["shape"] == [2, 2]
    assert np.allclose(np.reshape(outputs["probabilities"]["data"], (2, 2)).sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/nope/infer", infer_body(["x"]), 404, "not served"),
        ("/v2/models/chnsenti-smoke/versions/9/infer", infer_body(["x"]), 404, "no version"),
        ("/v2/models/chnsenti-smoke/infer", b"{not json", 400, "not valid JSON"),
        (
            "/v2/models/chnsenti-smoke/infer",
            infer_body([1, 2], datatype="INT32"),
            400,
            "expected|BYTES|datatype",
        ),
        ("/v2/models/chnsenti-smoke/infer", infer_body(["a", "b"], shape=[3]), 400, "needs 3"),
        ("/v2/models/chnsenti-smoke/infer", infer_body(["a", "b"], shape=[1, 2]), 400, "shape"),
        ("/v2/models/chnsenti-smoke/infer", infer_body(["   "]), 400, "empty"),
        ("/v2/models/chnsenti-smoke/infer", infer_body(["x"], name="words"), 400, "text"),
        ("/v2/models/chnsenti-smoke/infer", {"inputs": []}, 400, "inputs"),
        ("/v2/models/chnsenti-smoke/infer", b"", 400, "empty"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(server, path, body, status, message):
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    response = httpx.post(server.endpoint + path, content=content)
    assert response.status_code == status
    error = response.json()["error"]
    assert error and re.search(message, error), error
    assert httpx.get(f"{server.endpoint}/v2/health/ready").status_code == 200


def test_an_oversized_body_gets_413_and_the_server_keeps_serving(server):
    huge = infer_body(["好" * (5 * 1024 * 1024)])
    response = httpx.post(f"{server.endpoint}/v2/models/chnsenti-smoke/infer", json=huge)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    with ModelClient(server.endpoint) as client:
        assert client.predict(model_id="chnsenti-smoke", inputs={"text": "不错"})["label"]


def test_client_errors_are_specific(server):
    with ModelClient(server.endpoint) as client:
        with pytest.raises(ModelNotFoundError, match="not served"):
            client.predict(model_id="missing", inputs={"text": "你好"})
        with pytest.raises(InvalidInputError, match="empty"):
            client.predict(model_id="chnsenti-smoke", inputs={"text": ""})
        with pytest.raises(InvalidInputError):
            client.predict(model_id="chnsenti-smoke", inputs={"text": 42})
    with (
        ModelClient(f"http://127.0.0.1:{free_port()}", timeout=2) as client,
        pytest.raises(ServerUnreachableError, match="cannot reach"),
    ):
        client.predict(model_id="chnsenti-smoke", inputs={"text": "你好"})
