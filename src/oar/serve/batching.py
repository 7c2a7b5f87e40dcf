"""``DynamicBatcher``: many requests, one model call, attached to a model when it is loaded.

Adaptive by default: the first request of an idle model schedules a dispatch
on the event loop instead of starting a timer, so the batch holds every request
that was decoded in the same loop turn and nothing waits for company. Under
load, requests pile up while a batch runs and the next batch is larger: batch
size follows the arrival rate, and a lone request pays no delay. A fixed
``max_queue_delay_us`` (with ``preferred_batch_sizes``) is there for models
whose per-call cost is so high that waiting pays.

Admission is by latency, not only by count: the batcher keeps a moving
average of the wall time it takes to serve one queued item (measured between
the starts of back-to-back batches, so it includes the front end's share of the
core, not only the model's), and a request that would wait longer than
``max_queue_wait_us`` behind the items already queued is shed at once with
``OverloadedError`` (503 + Retry-After over REST, RESOURCE_EXHAUSTED over gRPC).
Under overload the admitted requests keep a bounded latency and the rest learn
it in microseconds, instead of everyone queueing for seconds (CoDel's lesson:
a standing queue is only delay). The wait counted is the request's own under
fair queueing (below), so one connection that floods a model is shed by its
own backlog while the others' requests are still admitted. ``max_queue_size``
stays as the hard cap.

Within a priority level, connections share the model fairly (start-time fair queueing, by items):
each request gets a start tag, the later of the batcher's virtual time and the end of its
connection's previous request, and batches take the smallest tags first. A connection that keeps a
hundred large requests queued then delays another's lone request by about one batch, not by its
whole backlog. The front ends name the connection in ``current_flow`` while they decode requests.

Requests are stacked along dimension 0 only when their other dimensions and
dtypes agree. If a batch fails with a client error (one bad request among good
ones) its requests are re-run one by one, so only the bad one fails.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from oar._core.errors import InvalidInputError, OarError, OverloadedError, RequestTimeoutError
from oar.serve.config import BatchingConfig
from oar.serve.metrics import ModelMetrics
from oar.serve.queues import DrainableQueue

log = logging.getLogger(__name__)

Tensors = dict[str, np.ndarray]
_LOWEST = 1 << 31  # priority 0 (unset) is served after every explicit level, as in Triton
_MAX_DEFERRALS = 8  # loop turns a dispatch may wait while requests keep arriving (adaptive mode)
_EWMA = 0.2  # weight of the newest batch in the per-item service time
_FLOWS_KEPT = 4096  # connections whose last tag is remembered before those already passed are forgotten

# The connection a request came from (any hashable; None: one shared flow), set by the front end
# around the code that decodes and queues requests, so the data plane's API needs no transport details.
current_flow: contextvars.ContextVar[object] = contextvars.ContextVar("current_flow", default=None)


@dataclass(slots=True)
class _Pending:
    rank: int
    start: int  # fair-queueing start tag (items)
    seq: int
    inputs: Tensors
    size: int
    key: Any
    flow: object  # the connection it came from (``current_flow``)
    future: asyncio.Future[Tensors]
    enqueued_ns: int
    deadline_ns: int  # 0 = none

    def __lt__(self, other: _Pending) -> bool:
        """Heap order: rank, start tag, arrival; written out, as order=True's tuples cost ~1.5x (serve_micro)."""
        if self.rank != other.rank:
            return self.rank < other.rank
        return self.start < other.start if self.start != other.start else self.seq < other.seq


class DynamicBatcher(DrainableQueue):
    """``outputs = await batcher.submit(inputs)``, or a future from ``enqueue``; ``run`` is the batch ``infer``."""

    def __init__(self, name: str, run: Callable[[Tensors], Tensors], config: BatchingConfig, metrics: ModelMetrics):
        self.name = name
        self.config = config
        self.metrics = metrics
        self._run = run
        self._queue: list[_Pending] = []
        self._seq = itertools.count()
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._running = 0
        self._closed = False
        self._executor = ThreadPoolExecutor(config.instances, f"oar-{name}") if config.instances else None
        self._max_running = max(config.instances, 1)
        self._seen = 0
        self._deferrals = 0
        self._queued_items = 0  # items (dim 0) of the requests in the heap
        self._item_ns = 0.0  # moving average: wall time to serve one queued item
        self._last_start = 0
        self._last_items = 0
        self._backlogged = False  # the last batch left requests queued: the next one follows straight on
        self._wait_budget_ns = config.max_queue_wait_us * 1000
        self._virtual_time = 0  # start tag of the last request taken into a batch
        self._flow_ends: dict[object, int] = {}  # connection -> end tag of its last queued request
        self._backlogs: dict[object, int] | None = None  # items queued per connection, while over budget

    @property
    def expected_wait_ns(self) -> float:
        """How long a request joining the queue now would wait, by the measured service time per item."""
        return self._queued_items * self._item_ns

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._running > 0

    async def submit(self, inputs: Tensors, priority: int = 0, timeout_us: int | None = None) -> Tensors:
        """Queue ``inputs`` and wait for their outputs; raise ``OverloadedError`` when the queue is full."""
        return await self.enqueue(inputs, priority, timeout_us)

    def enqueue(self, inputs: Tensors, priority: int = 0, timeout_us: int | None = None) -> asyncio.Future[Tensors]:
        """Queue ``inputs``; the future settles when their batch has run (cancel it to drop the request).

        Synchronous, so a front end can answer from the future's callback without a task per request.
        """
        if self._closed:
            raise OverloadedError(f"model '{self.name}' is being unloaded; retry to reach its successor")
        size, key = _batch_shape(inputs)
        if size > self.config.max_batch_size:
            raise InvalidInputError(
                f"request holds {size} items but model '{self.name}' takes at most {self.config.max_batch_size}"
                " per request; split it"
            )
        if len(self._queue) >= self.config.max_queue_size:
            raise OverloadedError(
                f"model '{self.name}' has {len(self._queue)} requests queued (its limit); retry later"
            )
        flow = current_flow.get()
        if self._wait_budget_ns and self._queued_items * self._item_ns > self._wait_budget_ns:
            wait_ns = self._fair_wait_items(flow, size) * self._item_ns
            if wait_ns > self._wait_budget_ns:
                raise OverloadedError(
                    f"model '{self.name}' is overloaded: a request would wait about {wait_ns / 1e6:.0f} ms in "
                    f"its queue, over its {self._wait_budget_ns / 1e6:g} ms budget; retry later"
                )
        backlogs = self._backlogs
        if backlogs is not None:  # counted since the last batch was taken: kept up to date
            backlogs[flow] = backlogs.get(flow, 0) + size
        loop = asyncio.get_running_loop()
        now = time.monotonic_ns()
        timeout = self.config.timeout_us if timeout_us is None else timeout_us
        pending = _Pending(
            rank=priority if priority > 0 else _LOWEST,
            start=self._start_tag(flow, size),
            seq=next(self._seq),
            inputs=inputs,
            size=size,
            key=key,
            flow=flow,
            future=loop.create_future(),
            enqueued_ns=now,
            deadline_ns=now + timeout * 1000 if timeout > 0 else 0,
        )
        heapq.heappush(self._queue, pending)
        self._queued_items += size
        self.metrics.queue_depth.set(len(self._queue))
        self._kick(loop)
        return pending.future

    def _count_backlogs(self) -> dict[object, int]:
        """Items queued per connection, the requests cancelled while queued (clients gone) dropped first.

        Cancelled requests would otherwise count in the queue's wait until a batch pops them: a peer that
        opens a hundred calls and hangs up would get others shed. Counted at most once per batch taken
        (arrivals admitted since are added as they come), and only when the queue is over its wait budget.
        """
        if self._backlogs is not None:
            return self._backlogs
        queue = self._queue
        live = [p for p in queue if not p.future.done()]
        if len(live) != len(queue):
            queue[:] = live
            heapq.heapify(queue)
        backlogs: dict[object, int] = {}
        for pending in live:
            backlogs[pending.flow] = backlogs.get(pending.flow, 0) + pending.size
        self._queued_items = sum(backlogs.values())
        self._backlogs = backlogs
        return backlogs

    def _fair_wait_items(self, flow: object, size: int) -> int:
        """Items queued ahead of a request of ``size`` from ``flow``, by fair-queueing order.

        Fair queueing serves each connection's backlog in turn, so the request waits for each one's
        backlog up to its own connection's backlog plus its own size, not for the whole queue: a connection
        that floods the model is shed by its own backlog, and a light one is still admitted. A request from
        a connection at least as loaded as the average is counted as waiting for the whole queue.
        """
        backlogs = self._count_backlogs()
        own = backlogs.get(flow, 0) + size
        if own * len(backlogs) >= self._queued_items:
            return self._queued_items
        return sum(min(backlog, own) for backlog in backlogs.values())

    def _start_tag(self, flow: object, size: int) -> int:
        """Where this request's flow stands: after its own queued work, never before the virtual time."""
        flows = self._flow_ends
        start = max(self._virtual_time, flows.get(flow, 0))
        flows[flow] = start + size
        if len(flows) > _FLOWS_KEPT:
            self._flow_ends = {f: end for f, end in flows.items() if end > self._virtual_time}
        return start

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._scheduled or self._running >= self._max_running or not self._queue:
            return
        delay_ns = self._remaining_delay_ns()
        self._scheduled = True
        if delay_ns <= 0:
            loop.call_soon(self._dispatch)
        else:
            self._timer = loop.call_later(delay_ns / 1e9, self._dispatch)

    def _remaining_delay_ns(self) -> int:
        delay_us = self.config.max_queue_delay_us
        if delay_us == 0:
            return 0
        queued = sum(p.size for p in self._queue)
        if queued >= self.config.max_batch_size or queued in self.config.preferred_batch_sizes:
            return 0
        oldest = min(p.enqueued_ns for p in self._queue)
        return oldest + delay_us * 1000 - time.monotonic_ns()

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        if self._more_are_arriving():
            loop.call_soon(self._dispatch)  # give the loop one more turn to decode them into this batch
            return
        self._scheduled = False
        self._timer = None
        self._deferrals = 0
        batch = self._take_batch()
        self._backlogs = None
        self._seen = len(self._queue)
        self.metrics.queue_depth.set(len(self._queue))
        if not batch:
            self._kick(loop)
            return
        started = time.monotonic_ns()
        self._measure_service(started, sum(p.size for p in batch))
        for pending in batch:
            self.metrics.queue_seconds.observe((started - pending.enqueued_ns) / 1e9)
            self.metrics.queue_ns += started - pending.enqueued_ns
        inputs = [p.inputs for p in batch]
        self._running += 1
        if self._executor is None:
            try:
                outcomes = self._execute(inputs)
            finally:
                self._running -= 1
            self._deliver(batch, outcomes, started)
            self._kick(loop)
            return
        work = loop.run_in_executor(self._executor, self._execute, inputs)
        work.add_done_callback(lambda done: self._finish(batch, done, started, loop))
        self._kick(loop)

    def _measure_service(self, started: int, items: int) -> None:
        """When batches run back to back, the time between their starts is what the previous one's items cost."""
        if self._backlogged and self._last_items:
            self._update_item_ns((started - self._last_start) / self._last_items)
        self._last_start, self._last_items = started, items
        self._backlogged = bool(self._queue)

    def _update_item_ns(self, sample: float) -> None:
        self._item_ns = sample if not self._item_ns else self._item_ns + _EWMA * (sample - self._item_ns)

    def _more_are_arriving(self) -> bool:
        """Adaptive mode: did requests join since the last look, with room left in the batch?

        A front end that hands requests to the loop one callback at a time would otherwise see batches
        of one; one that decodes a burst in one turn (both of oar's do) pays a single extra loop turn.
        """
        if self.config.max_queue_delay_us or self._deferrals >= _MAX_DEFERRALS:
            return False
        queued = len(self._queue)
        growing = queued > self._seen and queued < self.config.max_batch_size
        self._seen = queued
        if growing:
            self._deferrals += 1
        return growing

    def _finish(
        self, batch: list[_Pending], done: asyncio.Future, started: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._running -= 1
        exc = done.exception()
        self._deliver(batch, [exc] * len(batch) if exc else done.result(), started)
        self._kick(loop)

    def _take_batch(self) -> list[_Pending]:
        now = time.monotonic_ns()
        batch: list[_Pending] = []
        skipped: list[_Pending] = []
        total, limit = 0, self.config.max_batch_size
        while self._queue and total < limit:
            pending = heapq.heappop(self._queue)
            self._queued_items -= pending.size
            if pending.future.done():  # cancelled by its caller (client went away)
                continue
            if pending.deadline_ns and now > pending.deadline_ns:
                waited = (now - pending.enqueued_ns) / 1e6
                pending.future.set_exception(
                    RequestTimeoutError(
                        f"request waited {waited:.1f} ms in model '{self.name}' queue, past its timeout"
                    )
                )
                continue
            if batch and (pending.key != batch[0].key or total + pending.size > limit):
                skipped.append(pending)
                if total + pending.size > limit:
                    break
                continue
            batch.append(pending)
            total += pending.size
            self._virtual_time = max(self._virtual_time, pending.start)
        for pending in skipped:
            heapq.heappush(self._queue, pending)
            self._queued_items += pending.size
        return batch

    def _execute(self, inputs: list[Tensors]) -> list[Tensors | BaseException]:
        """Run one batch; split its outputs; on a client error, re-run each request alone."""
        if len(inputs) == 1:
            return [self._call(inputs[0])]
        sizes = [len(next(iter(i.values()))) for i in inputs]
        stacked = {name: np.concatenate([i[name] for i in inputs]) for name in inputs[0]}
        try:
            outputs = self._run(stacked)
        except InvalidInputError:
            return [self._call(i) for i in inputs]
        except Exception as exc:  # a model failure fails the whole batch, reported per request
            return [exc] * len(inputs)
        total = sum(sizes)
        if any(v.ndim == 0 or v.shape[0] != total for v in outputs.values()):
            return [self._call(i) for i in inputs]  # outputs not batch-major: cannot split them
        bounds = np.cumsum([0, *sizes])
        return [{k: v[a:b] for k, v in outputs.items()} for a, b in itertools.pairwise(bounds)]

    def _call(self, inputs: Tensors) -> Tensors | BaseException:
        try:
            return self._run(inputs)
        except Exception as exc:
            return exc

    def _deliver(self, batch: list[_Pending], outcomes: list[Tensors | BaseException], started: int) -> None:
        elapsed = time.monotonic_ns() - started
        items = sum(p.size for p in batch)
        metrics = self.metrics
        metrics.compute_seconds.observe(elapsed / 1e9)
        metrics.batch_size.observe(items)
        metrics.compute_ns += elapsed
        metrics.batches += 1
        metrics.items += items
        if not self._backlogged:  # no back-to-back batches to time: the model's own time is the estimate
            self._update_item_ns(elapsed / max(items, 1))
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():
                continue
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, OarError):
                    log.error("model '%s' failed", self.name, exc_info=outcome)
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)


def _batch_shape(inputs: Tensors) -> tuple[int, Any]:
    """Items in the request (dim 0) and the key that requests must share to be stacked together."""
    arrays = list(inputs.values())
    if not arrays:
        raise InvalidInputError("request has no inputs")
    if any(a.ndim == 0 for a in arrays) or len({a.shape[0] for a in arrays}) != 1 or arrays[0].shape[0] == 0:
        return 1, object()  # not batch-major (or empty): runs alone, and the runtime judges it
    key = tuple((name, a.dtype.str, a.shape[1:]) for name, a in inputs.items())
    return arrays[0].shape[0], key
