"""``DynamicBatcher`` in-process with real runtimes: batches form, results are each request's own, limits hold."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from oar._core.errors import InvalidInputError, OverloadedError, RequestTimeoutError
from oar.runtime import load_runtime
from oar.serve.batching import DynamicBatcher, current_flow
from oar.serve.config import BatchingConfig
from oar.serve.metrics import ServerMetrics

TEXTS = ["质量很好，非常满意", "太差了，再也不买了", "还行吧，一般般，没有想象中那么好，但是也不算差"]


@pytest.fixture(scope="module")
def text_runtime(trained):
    return load_runtime(trained.model.path, intra_op_threads=1)


@pytest.fixture(scope="module")
def numeric_runtime(hub, numeric_models):
    return load_runtime(hub.open_package("num-fp32", 1), intra_op_threads=1)


def _batcher(runtime, **config) -> DynamicBatcher:
    return DynamicBatcher("m", runtime.infer, BatchingConfig(**config), ServerMetrics().for_model("m", 1))


def _texts(*texts: str) -> dict[str, np.ndarray]:
    return {"text": np.array([t.encode() for t in texts], dtype=object)}


def test_requests_decoded_in_one_loop_turn_share_one_model_call(text_runtime) -> None:
    batcher = _batcher(text_runtime)

    async def run() -> list:
        return await asyncio.gather(*(batcher.submit(_texts(TEXTS[i % 3])) for i in range(9)))

    results = asyncio.run(run())
    assert batcher.metrics.batches == 1 and batcher.metrics.items == 9
    for i, result in enumerate(results):
        alone = text_runtime.infer(_texts(TEXTS[i % 3]))
        assert list(result["label"]) == list(alone["label"])
        np.testing.assert_allclose(result["probabilities"], alone["probabilities"], rtol=1e-5, atol=1e-6)


def test_batches_never_exceed_the_max_batch_size(numeric_runtime) -> None:
    batcher = _batcher(numeric_runtime, max_batch_size=4)

    async def run() -> list:
        return await asyncio.gather(*(batcher.submit({"x": np.full((2, 4), i, np.float32)}) for i in range(5)))

    results = asyncio.run(run())
    assert batcher.metrics.batches == 3 and batcher.metrics.items == 10
    for i, result in enumerate(results):
        np.testing.assert_allclose(
            result["output"], numeric_runtime.infer({"x": np.full((2, 4), i, np.float32)})["output"], rtol=1e-6
        )


def test_one_bad_request_fails_alone_and_its_batch_mates_succeed(text_runtime) -> None:
    batcher = _batcher(text_runtime)

    async def run() -> list:
        requests = [_texts(TEXTS[0]), _texts("   "), _texts(TEXTS[1])]
        return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)

    good, bad, other = asyncio.run(run())
    assert isinstance(bad, InvalidInputError) and "empty" in str(bad)
    assert good["label"][0] == text_runtime.infer(_texts(TEXTS[0]))["label"][0]
    assert other["label"][0] == text_runtime.infer(_texts(TEXTS[1]))["label"][0]


def test_requests_of_different_shapes_are_not_stacked(numeric_runtime) -> None:
    batcher = _batcher(numeric_runtime)

    async def run() -> list:
        return await asyncio.gather(
            batcher.submit({"x": np.ones((1, 4), np.float32)}),
            batcher.submit({"x": np.ones((1, 5), np.float32)}),
            return_exceptions=True,
        )

    ok, wrong = asyncio.run(run())
    assert ok["output"].shape == (1, 3)
    assert isinstance(wrong, InvalidInputError) and "shape" in str(wrong)


def test_higher_priority_runs_first_when_the_batch_is_full(numeric_runtime) -> None:
    batcher = _batcher(numeric_runtime, max_batch_size=1)
    finished: list[str] = []

    async def submit(tag: str, priority: int) -> None:
        await batcher.submit({"x": np.ones((1, 4), np.float32)}, priority=priority)
        finished.append(tag)

    async def run() -> None:
        await asyncio.gather(submit("default", 0), submit("low", 5), submit("urgent", 1))

    asyncio.run(run())
    assert finished == ["urgent", "low", "default"]


def test_a_connection_with_a_backlog_delays_another_by_one_batch_not_its_whole_backlog(numeric_runtime) -> None:
    batcher = _batcher(numeric_runtime, max_batch_size=8)
    finished: list[str] = []

    async def submit(flow: str, tag: str, rows: int) -> None:
        current_flow.set(flow)  # as a front end does for each connection (a task runs in its own context)
        await batcher.submit({"x": np.ones((rows, 4), np.float32)})
        finished.append(tag)

    async def run() -> None:
        heavy = [asyncio.create_task(submit("heavy", f"heavy-{i}", 8)) for i in range(10)]
        await asyncio.sleep(0)  # the heavy connection's ten full batches are queued first
        await asyncio.gather(*heavy, submit("light", "light", 1))

    asyncio.run(run())
    assert finished.index("light") <= 2, finished  # behind the batch running and at most one more
    assert sorted(finished) == sorted([f"heavy-{i}" for i in range(10)] + ["light"])


def test_a_full_queue_refuses_instead_of_growing(numeric_runtime) -> None:
    batcher = _batcher(numeric_runtime, max_queue_size=2, max_queue_delay_us=50_000)

    async def run() -> list:
        return await asyncio.gather(
            *(batcher.submit({"x": np.ones((1, 4), np.float32)}) for _ in range(3)), return_exceptions=True
        )

    results = asyncio.run(run())
    assert [isinstance(r, OverloadedError) for r in results] == [False, False, True]
    assert batcher.metrics.batches == 1  # the delay gathered the two admitted requests


def test_a_request_past_its_timeout_never_runs(numeric_runtime) -> None:
    batcher = _batcher(numeric_runtime, max_queue_delay_us=20_000)

    async def run() -> list:
        return await asyncio.gather(
            batcher.submit({"x": np.ones((1, 4), np.float32)}, timeout_us=1),
            batcher.submit({"x": np.ones((1, 4), np.float32)}),
            return_exceptions=True,
        )

    late, on_time = asyncio.run(run())
    assert isinstance(late, RequestTimeoutError)
    assert on_time["output"].shape == (1, 3) and batcher.metrics.items == 1


def test_worker_threads_give_the_same_answers_as_the_event_loop(text_runtime) -> None:
    inline, threaded = _batcher(text_runtime), _batcher(text_runtime, instances=2)

    async def run(batcher: DynamicBatcher) -> list:
        return await asyncio.gather(*(batcher.submit(_texts(t)) for t in TEXTS * 3))

    for a, b in zip(asyncio.run(run(inline)), asyncio.run(run(threaded)), strict=True):
        np.testing.assert_allclose(a["probabilities"], b["probabilities"], rtol=1e-5, atol=1e-6)


def test_a_request_larger_than_the_max_batch_size_is_refused(numeric_runtime) -> None:
    batcher = _batcher(numeric_runtime, max_batch_size=2)
    with pytest.raises(InvalidInputError, match="at most 2"):
        asyncio.run(batcher.submit({"x": np.ones((3, 4), np.float32)}))


def test_large_mixed_length_batches_run_in_length_groups_with_unchanged_results(text_runtime) -> None:
    from oar.data import load_builtin
    from oar.runtime import text_classifier

    texts = list(load_builtin("chnsenti").test.x[:48])
    lengths = np.array([len(text_runtime.tokenizer.encode(t).ids) for t in texts])
    assert len(text_classifier._length_groups(np.sort(lengths))) > 1  # real reviews vary enough to split
    grouped = text_runtime.logits(texts)
    one_by_one = np.concatenate([text_runtime.logits([t]) for t in texts])
    np.testing.assert_allclose(grouped, one_by_one, rtol=1e-4, atol=1e-5)


def _slow_model(runtime, seconds: float):
    """The real runtime, made to take ``seconds`` more per call: a model whose cost admission must see."""
    import time

    def infer(inputs):
        time.sleep(seconds)
        return runtime.infer(inputs)

    return infer


@pytest.mark.parametrize("budget_us", [10_000, 0], ids=["latency budget", "count only"])
def test_requests_that_would_wait_past_the_budget_are_shed_at_once(numeric_runtime, budget_us) -> None:
    config = BatchingConfig(max_batch_size=1, max_queue_wait_us=budget_us)
    batcher = DynamicBatcher("m", _slow_model(numeric_runtime, 0.002), config, ServerMetrics().for_model("m", 1))
    x = {"x": np.ones((1, 4), np.float32)}

    async def run() -> list:
        await asyncio.gather(*(batcher.submit(x) for _ in range(5)))  # back-to-back batches: ~2 ms an item
        return await asyncio.gather(*(batcher.submit(x) for _ in range(50)), return_exceptions=True)

    results = asyncio.run(run())
    shed = [r for r in results if isinstance(r, OverloadedError)]
    if budget_us:
        assert 1 <= 50 - len(shed) <= 10  # 10 ms of >= 2 ms items, whatever the machine adds per item
        assert "would wait about" in str(shed[0]) and "10 ms" in str(shed[0])
    else:
        assert not shed


def test_a_flooding_connection_is_shed_by_its_own_backlog_and_a_light_one_is_still_admitted(numeric_runtime) -> None:
    config = BatchingConfig(max_batch_size=1, max_queue_wait_us=10_000)
    batcher = DynamicBatcher("m", _slow_model(numeric_runtime, 0.002), config, ServerMetrics().for_model("m", 1))
    x = {"x": np.ones((1, 4), np.float32)}

    async def submit(flow: str) -> object:
        current_flow.set(flow)
        try:
            return await batcher.submit(x)
        except OverloadedError as exc:
            return exc

    async def run() -> tuple[list, list]:
        await asyncio.gather(*(submit("warm") for _ in range(5)))  # back-to-back batches: ~2 ms an item
        heavy = [asyncio.create_task(submit("heavy")) for _ in range(50)]
        await asyncio.sleep(0)  # the heavy connection fills the queue past the budget first
        light = [asyncio.create_task(submit(f"light-{i}")) for i in range(3)]
        return await asyncio.gather(*heavy), await asyncio.gather(*light)

    heavy, light = asyncio.run(run())
    assert sum(isinstance(r, OverloadedError) for r in heavy) >= 40  # the flood is shed by its own backlog
    assert not any(isinstance(r, OverloadedError) for r in light), light  # the others wait their turn only
