"""``GenerationQueue``: the text-to-image counterpart of ``DynamicBatcher``, attached to a model when it is loaded.

A generation takes seconds, not microseconds, and each request has its own prompt, size and step count,
so nothing is stacked into batches: requests wait first-in first-out, at most ``concurrency`` run at once
on worker threads (the event loop never runs a denoising step), and at most ``max_queue`` wait; more are
shed with ``OverloadedError`` (503 + Retry-After), so a burst never turns into a standing queue of minutes.

A request is cancelled by cancelling its future, as the front ends do when its client goes away (a reset
connection, an HTTP/2 or gRPC stream reset). A waiting one just leaves the queue; a running one has its
stop flag set, and the runtime ends it at the next denoising step, which frees its slot for the next
request. A request's ``timeout`` (µs) covers its wait and its generation the same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oar._core.errors import OarError, OverloadedError, RequestTimeoutError
from oar.runtime.text_to_image import GenerationRequest, GenerationStopped, TextToImageRuntime
from oar.serve.metrics import ModelMetrics
from oar.serve.queues import DrainableQueue

log = logging.getLogger(__name__)
Tensors = dict[str, np.ndarray]
_CANCELLED = "the client went away"
_TIMED_OUT = "past its timeout"


@dataclass(slots=True)
class _Job:
    request: GenerationRequest
    future: asyncio.Future[Tensors]
    enqueued_ns: int
    deadline_ns: int  # 0 = none
    stop: threading.Event = field(default_factory=threading.Event)

    def stop_reason(self) -> str | None:
        """Asked by the worker between denoising steps."""
        if self.stop.is_set():
            return _CANCELLED
        if self.deadline_ns and time.monotonic_ns() > self.deadline_ns:
            return _TIMED_OUT
        return None


class GenerationQueue(DrainableQueue):
    """``future = queue.enqueue(inputs, parameters=...)``; cancel the future to stop its generation."""

    def __init__(self, name: str, runtime: TextToImageRuntime, metrics: ModelMetrics, timeout_us: int = 0) -> None:
        caps = runtime.caps
        self.name = name
        self.runtime = runtime
        self.metrics = metrics
        self.concurrency = caps.concurrency
        self.max_queue = caps.max_queue
        self.timeout_us = timeout_us
        self._queue: deque[_Job] = deque()
        self._running = 0
        self._closed = False
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(self.concurrency, f"oar-gen-{name}")

    _DRAIN_POLL_S = 0.01  # generations take seconds

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._running > 0

    def enqueue(
        self,
        inputs: Tensors,
        priority: int = 0,
        timeout_us: int | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> asyncio.Future[Tensors]:
        """Check the request against the caps (400 now, not after a wait) and queue it."""
        if self._closed:
            raise OverloadedError(f"model '{self.name}' is being unloaded; retry to reach its successor")
        request = self.runtime.parse(inputs, parameters or {})
        if len(self._queue) >= self.max_queue:  # those whose clients left count no more
            self._queue = deque(job for job in self._queue if not job.future.done())
        if len(self._queue) >= self.max_queue and self._running >= self.concurrency:
            raise OverloadedError(
                f"model '{self.name}' has {len(self._queue)} generations waiting (its limit); retry later"
            )
        loop = asyncio.get_running_loop()
        now = time.monotonic_ns()
        timeout = self.timeout_us if timeout_us is None else timeout_us
        job = _Job(request, loop.create_future(), now, now + timeout * 1000 if timeout > 0 else 0)
        job.future.add_done_callback(functools.partial(_stop_if_cancelled, job))
        self._queue.append(job)
        self.metrics.queue_depth.set(len(self._queue))
        self._kick(loop)
        return job.future

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._queue and self._running < self.concurrency:
            job = self._queue.popleft()
            self.metrics.queue_depth.set(len(self._queue))
            if job.future.done():  # cancelled while it waited
                continue
            started = time.monotonic_ns()
            self.metrics.queue_seconds.observe((started - job.enqueued_ns) / 1e9)
            self.metrics.queue_ns += started - job.enqueued_ns
            self._running += 1
            work = loop.run_in_executor(self._executor, self._generate, job)
            work.add_done_callback(functools.partial(self._finish, job, started, loop))

    def _generate(self, job: _Job) -> Tensors:
        png = self.runtime.generate(job.request, job.stop_reason)
        return {"image": np.array([png], dtype=object)}

    def _finish(self, job: _Job, started: int, loop: asyncio.AbstractEventLoop, work: asyncio.Future) -> None:
        self._running -= 1
        elapsed = time.monotonic_ns() - started
        metrics = self.metrics
        metrics.compute_seconds.observe(elapsed / 1e9)
        metrics.batch_size.observe(1)
        metrics.compute_ns += elapsed
        metrics.batches += 1
        metrics.items += 1
        if not job.future.done():
            exc = work.exception()
            if exc is None:
                job.future.set_result(work.result())
            elif isinstance(exc, GenerationStopped):
                job.future.set_exception(RequestTimeoutError(f"generation stopped after {elapsed / 1e9:.1f} s: {exc}"))
            else:
                if not isinstance(exc, OarError):
                    log.error("model '%s' failed", self.name, exc_info=exc)
                job.future.set_exception(exc)
        self._kick(loop)


def _stop_if_cancelled(job: _Job, future: asyncio.Future) -> None:
    if future.cancelled():
        job.stop.set()
