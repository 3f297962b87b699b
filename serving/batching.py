"""Adaptive micro-batching: concurrent requests for one model version are scored together.

A row costs about as much as eight inside a tree ensemble's predict (its fixed cost dominates), so scoring the
requests that wait together is the cheapest way to serve many of them. The batch is adaptive, as in MLServer: no
timer. When nothing is being scored, a request is scored at once (one connection pays no wait); while a batch is
being scored, new requests queue and the next batch takes all of them, up to a row cap.

Scoring runs on the event loop thread itself. A worker thread would let the loop read more requests during a
prediction, but with one OpenMP thread per worker process and the GIL held by most of predict, the hand-over
costs more than it overlaps; requests that arrive meanwhile wait in the socket and form the next batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable, Generic, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    """`await submit(item)` returns `score([... item ...])`'s answer for it. `size(item)` is its row count."""

    def __init__(self, score: Callable[[Sequence[Item]], list[Result]], size: Callable[[Item], int],
                 max_rows: int) -> None:
        self._score, self._size, self.max_rows = score, size, max_rows
        self._queue: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._draining = False
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
                self._score_next()
        finally:
            self._draining = False

    def _score_next(self) -> None:
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
        try:
            results = self._score([item for item, _ in live])
        except Exception as exc:  # noqa: BLE001 - isolate the request that fails: score each alone
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            for item, future in live:
                try:
                    future.set_result(self._score([item])[0])
                except Exception as alone:  # noqa: BLE001 - the failure belongs to this request alone
                    future.set_exception(alone)
            return
        for (_, future), result in zip(live, results):
            future.set_result(result)

