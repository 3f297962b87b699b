"""Adaptive micro-batching: concurrent requests share a batch, a lone one is scored at once, a bad one fails alone."""

from __future__ import annotations

import asyncio
from typing import Sequence

import pytest

from serving.batching import MicroBatcher


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def score(self, items: Sequence[int]) -> list[int]:
        if any(item < 0 for item in items):
            raise ValueError(f"cannot score {min(items)}")
        self.batches.append(list(items))
        return [item * 10 for item in items]


def test_requests_arriving_together_are_scored_in_one_batch() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder.score, lambda _: 1, max_rows=64)

    async def main() -> list[int]:
        return list(await asyncio.gather(*(batcher.submit(i) for i in range(8))))

    assert asyncio.run(main()) == [i * 10 for i in range(8)]
    assert recorder.batches == [list(range(8))]


def test_the_row_cap_cuts_batches() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder.score, lambda _: 3, max_rows=6)

    async def main() -> None:
        await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    asyncio.run(main())
    assert [len(batch) for batch in recorder.batches] == [2, 2, 1]


def test_a_request_that_fails_fails_alone_and_its_batch_mates_are_answered() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder.score, lambda _: 1, max_rows=64)

    async def main() -> list[object]:
        return list(await asyncio.gather(batcher.submit(1), batcher.submit(-1), batcher.submit(2),
                                         return_exceptions=True))

    first, failed, third = asyncio.run(main())
    assert (first, third) == (10, 20)
    assert isinstance(failed, ValueError) and "cannot score -1" in str(failed)


def test_a_lone_request_is_scored_without_waiting_for_company() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder.score, lambda _: 1, max_rows=64)

    async def main() -> None:
        assert await batcher.submit(4) == 40
        # scored before the next request existed: the second forms a batch of its own
        assert await batcher.submit(5) == 50

    asyncio.run(main())
    assert recorder.batches == [[4], [5]]


def test_a_scoring_error_reaches_a_lone_caller() -> None:
    batcher = MicroBatcher(Recorder().score, lambda _: 1, max_rows=64)
    with pytest.raises(ValueError, match="cannot score -3"):
        asyncio.run(batcher.submit(-3))


def test_after_a_batch_of_several_the_next_waits_briefly_for_as_many() -> None:
    """Three clients sent at once: the next batch waits (within its budget) for the two that come a moment later."""
    import time

    recorder = Recorder()

    def slow(items: Sequence[int]) -> list[int]:
        time.sleep(0.2)  # a scoring's cost sets the wait's budget: half of it, at most max_wait
        return recorder.score(items)

    batcher = MicroBatcher(slow, lambda _: 1, max_rows=64, max_wait=0.5)

    async def main() -> None:
        await asyncio.gather(*(batcher.submit(i) for i in range(3)))
        first = asyncio.ensure_future(batcher.submit(3))

        async def a_moment_later(item: int) -> int:
            await asyncio.sleep(0.02)
            return await batcher.submit(item)
        await asyncio.gather(first, a_moment_later(4), a_moment_later(5))

    asyncio.run(main())
    assert recorder.batches == [[0, 1, 2], [3, 4, 5]]


def test_an_off_loop_batcher_leaves_the_event_loop_free_while_its_model_waits() -> None:
    """An endpoint model waits on the network: while it scores, the loop keeps running other work (here, the very
    work that lets it finish; scored on the loop it would wait forever)."""
    import threading

    released = threading.Event()

    def score(items: Sequence[int]) -> list[int]:
        if not released.wait(timeout=10):
            raise TimeoutError("the event loop never ran while the model scored")
        return [item * 10 for item in items]

    batcher = MicroBatcher(score, lambda _: 1, max_rows=64, off_loop=True)

    async def release() -> None:
        await asyncio.sleep(0)
        released.set()

    async def main() -> list[object]:
        return list(await asyncio.gather(batcher.submit(4), release()))

    assert asyncio.run(main())[0] == 40
