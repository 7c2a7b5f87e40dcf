"""``ModelClient`` and ``AsyncModelClient`` over REST and gRPC against a real server; 503 retry with backoff."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from oar._core.errors import InvalidInputError, ModelNotFoundError, OverloadedError, ServerUnreachableError
from oar.client import AsyncModelClient, ModelClient, RetryPolicy
from oar.serve.process import free_port

from .conftest import INFERENCE_TOKEN, QUEUE_DELAY_S

TEXTS = ["质量很好，非常满意", "太差了，再也不买了"]


def test_grpc_client_predicts_what_the_rest_client_predicts(full_server) -> None:
    with ModelClient(full_server.endpoint) as rest, ModelClient(full_server.grpc_endpoint) as grpc_client:
        assert grpc_client.is_live() and grpc_client.is_ready() and grpc_client.is_ready("chnsenti-smoke:1")
        over_rest = rest.predict(model_id="chnsenti-smoke", inputs={"text": TEXTS})
        over_grpc = grpc_client.predict(model_id="chnsenti-smoke", inputs={"text": TEXTS})
        single = grpc_client.predict("chnsenti-smoke:1", inputs={"text": TEXTS[0]})
    assert [r["label"] for r in over_grpc] == [r["label"] for r in over_rest]
    np.testing.assert_allclose([r["score"] for r in over_grpc], [r["score"] for r in over_rest], rtol=1e-6)
    assert single == over_grpc[0]


def test_grpc_client_errors_are_the_same_classes_as_over_rest(full_server) -> None:
    for endpoint in (full_server.endpoint, full_server.grpc_endpoint):
        with ModelClient(endpoint) as client:
            with pytest.raises(ModelNotFoundError, match="not served"):
                client.predict(model_id="missing", inputs={"text": "你好"})
            with pytest.raises(InvalidInputError, match="empty"):
                client.predict(model_id="chnsenti-smoke", inputs={"text": " "})
    with ModelClient(f"grpc://127.0.0.1:{free_port()}", timeout=2) as client:
        assert not client.is_live()
        with pytest.raises(ServerUnreachableError):
            client.predict(model_id="chnsenti-smoke", inputs={"text": "你好"})
    with pytest.raises(InvalidInputError, match="bad endpoint"):
        ModelClient("127.0.0.1:8500")


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_async_client_sends_concurrent_requests_over_one_connection(full_server, scheme) -> None:
    endpoint = full_server.endpoint if scheme == "http" else full_server.grpc_endpoint

    async def run() -> list:
        async with AsyncModelClient(endpoint) as client:
            return await asyncio.gather(
                *(client.predict("chnsenti-smoke", inputs={"text": TEXTS[i % 2]}) for i in range(8))
            )

    results = asyncio.run(run())
    with ModelClient(full_server.endpoint) as client:
        expected = client.predict("chnsenti-smoke", inputs={"text": TEXTS})
    assert [r["label"] for r in results] == [expected[i % 2]["label"] for i in range(8)]


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_a_shed_request_is_retried_with_backoff_until_it_is_admitted(constrained, scheme) -> None:
    endpoint = constrained.endpoint if scheme == "http" else constrained.grpc_endpoint
    x = {"x": np.ones((1, 4), dtype=np.float32)}
    with ModelClient(endpoint, token=INFERENCE_TOKEN) as first:
        holder = threading.Thread(target=lambda: first.infer("num-fp32", x))
        holder.start()
        time.sleep(QUEUE_DELAY_S / 4)  # the queue (size 1) is now full
        impatient = RetryPolicy(attempts=1)
        with ModelClient(endpoint, token=INFERENCE_TOKEN, retry=impatient) as client, pytest.raises(OverloadedError):
            client.infer("num-fp32", x)
        patient = RetryPolicy(attempts=8, backoff_s=0.1, max_backoff_s=0.4)
        with ModelClient(endpoint, token=INFERENCE_TOKEN, retry=patient) as client:
            assert client.infer("num-fp32", x)["output"].shape == (1, 3)
        holder.join()
