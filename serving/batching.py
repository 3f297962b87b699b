"""Adaptive micro-batching: concurrent requests for one model version are scored together.

A row costs about as much as eight inside a tree ensemble's predict (its fixed cost dominates), so scoring the
requests that wait together is the cheapest way to serve many of them. The batch adapts to the traffic: when
recent batches held one request (one client at a time), a request is scored at once and pays no wait; when they
held several, the next batch waits a little (at most a fraction of one scoring's time, never more than
MAX_WAIT_SECONDS) for as many requests as the recent batches held, since those clients are about to send again.
A row cap bounds every batch.

Scoring runs on the event loop thread itself. A worker thread would let the loop read more requests during a
prediction, but with one OpenMP thread per worker process and the GIL held by most of predict, the hand-over
costs more than it overlaps; requests that arrive meanwhile wait in the socket and form the next batch. The
exception is a model that waits on the network (an endpoint model, `off_loop`): it scores in a worker thread, so
the loop keeps answering other models while the endpoint thinks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Callable, Generic, Sequence, TypeVar

MAX_WAIT_SECONDS = 0.002
POLL_SECONDS = 0.0002
RECENT = 8  # batches whose sizes say how many clients are sending at once
Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    """`await submit(item)` returns `score([... item ...])`'s answer for it. `size(item)` is its row count."""

    def __init__(self, score: Callable[[Sequence[Item]], list[Result]], size: Callable[[Item], int],
                 max_rows: int, max_wait: float = MAX_WAIT_SECONDS, off_loop: bool = False) -> None:
        self._score, self._size, self.max_rows, self.max_wait = score, size, max_rows, max_wait
        self.off_loop = off_loop  # score in a worker thread: the model waits on I/O, not on the CPU
        self._queue: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._draining = False
        self._recent: deque[int] = deque([1], maxlen=RECENT)  # requests per recent batch
        self._last_seconds = 0.0  # how long the last batch took to score
        self.batches = 0  # how many batches were scored: how much the batching saved shows in rows per batch

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                # Requests read in the same turn of the loop as this one enqueue before the batch is cut.
                await asyncio.sleep(0)
                await self._gather()
                await self._score_next()
        finally:
            self._draining = False

    async def _gather(self) -> None:
        """Wait briefly for the requests that recent batches say are coming (none with a single client)."""
        expected = max(self._recent)
        deadline = time.perf_counter() + min(self.max_wait, self._last_seconds / 2)
        while len(self._queue) < expected and time.perf_counter() < deadline:
            await asyncio.sleep(POLL_SECONDS)  # the loop reads the sockets meanwhile, without spinning

    async def _run(self, items: list[Item]) -> list[Result]:
        return await asyncio.to_thread(self._score, items) if self.off_loop else self._score(items)

    async def _score_next(self) -> None:
        batch = [self._queue.popleft()]
        rows = self._size(batch[0][0])
        while self._queue and rows + self._size(self._queue[0][0]) <= self.max_rows:
            item = self._queue.popleft()
            rows += self._size(item[0])
            batch.append(item)
        live = [(item, future) for item, future in batch if not future.cancelled()]  # its client went away
        if not live:
            return
        self.batches += 1
        self._recent.append(len(live))
        began = time.perf_counter()
        try:
            results = await self._run([item for item, _ in live])
        except Exception as exc:  # noqa: BLE001 - isolate the request that fails: score each alone
            if len(live) == 1:
                _settle(live[0][1], exception=exc)
                return
            for item, future in live:
                try:
                    _settle(future, (await self._run([item]))[0])
                except Exception as alone:  # noqa: BLE001 - the failure belongs to this request alone
                    _settle(future, exception=alone)
            return
        self._last_seconds = time.perf_counter() - began
        for (_, future), result in zip(live, results):
            _settle(future, result)


def _settle(future: "asyncio.Future[Result]", result: Any = None, exception: BaseException | None = None) -> None:
    """Answer a request unless its client went away meanwhile (possible while a worker thread scored)."""
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
