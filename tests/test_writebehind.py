"""The write-behind buffer on its own: batches by interval, a refused batch kept ahead of what
came since (merged per key), the bound by weight dropping the oldest and reporting each."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from redis.exceptions import ConnectionError as RedisConnectionError

from router.writebehind import WriteBehind

log = logging.getLogger("test.writebehind")


class Sink:
    """A writer that records each batch, or refuses while `away`."""

    def __init__(self) -> None:
        self.batches: list[dict[str, int]] = []
        self.away = False

    async def write(self, batch: Mapping[str, int]) -> None:
        await asyncio.sleep(0)
        if self.away:
            raise RedisConnectionError("refused")
        self.batches.append(dict(batch))


def test_a_later_value_replaces_an_earlier_one_and_a_flush_writes_once() -> None:
    async def main() -> None:
        sink = Sink()
        buffer = WriteBehind[str, int]("numbers", sink.write, 60, log)
        buffer.add("a", 1)
        buffer.add("b", 2)
        buffer.add("a", 3)
        assert buffer.get("a") == 3
        await buffer.flush()
        await buffer.flush()  # nothing waits: no write
        assert sink.batches == [{"a": 3, "b": 2}]
        assert len(buffer) == 0

    asyncio.run(main())


def test_the_loop_writes_every_interval() -> None:
    async def main() -> None:
        sink = Sink()
        buffer = WriteBehind[str, int]("numbers", sink.write, 0.01, log)
        running = asyncio.create_task(buffer.run())
        buffer.add("a", 1)
        for _ in range(200):
            if sink.batches:
                break
            await asyncio.sleep(0.01)
        running.cancel()
        assert sink.batches == [{"a": 1}]

    asyncio.run(main())


def test_a_refused_batch_is_kept_ahead_of_what_came_since_and_merged() -> None:
    async def main() -> None:
        sink = Sink()
        buffer = WriteBehind[str, int]("sums", sink.write, 60, log, merge=lambda a, b: a + b)
        buffer.add("a", 1)
        buffer.add("b", 2)
        sink.away = True
        flushing = asyncio.ensure_future(buffer.flush())
        await asyncio.sleep(0)  # the batch is out; these come in while it is being written
        buffer.add("c", 30)
        buffer.add("a", 10)
        await flushing
        assert [buffer.get(k) for k in "abc"] == [11, 2, 30]
        sink.away = False
        await buffer.flush()
        assert list(sink.batches[0].items()) == [("a", 11), ("b", 2), ("c", 30)]

    asyncio.run(main())


def test_the_bound_drops_the_oldest_by_weight_and_reports_each() -> None:
    async def main() -> None:
        sink, dropped = Sink(), list[int]()
        buffer = WriteBehind[str, int](
            "sized", sink.write, 60, log, limit=10, weigh=lambda v: v, dropped=dropped.append
        )
        for key, size in [("a", 4), ("b", 4), ("c", 4)]:
            buffer.add(key, size)
        assert dropped == [4]  # a went: 12 > 10
        assert buffer.weight == 8
        sink.away = True
        await buffer.flush()  # refused: kept, nothing more dropped
        assert buffer.weight == 8
        buffer.add("d", 3)  # over again: the oldest kept goes
        assert dropped == [4, 4]
        assert buffer.weight == 7
        sink.away = False
        await buffer.flush()
        assert sink.batches == [{"c": 4, "d": 3}]
        assert buffer.weight == 0

    asyncio.run(main())


def test_a_count_bound_drops_the_oldest_silently_without_a_callback() -> None:
    async def main() -> None:
        sink = Sink()
        buffer = WriteBehind[str, int]("counted", sink.write, 60, log, limit=2)
        for n, key in enumerate("abc"):
            buffer.add(key, n)
        buffer.add("c", 9)  # a replacement adds no weight
        assert buffer.weight == 2
        await buffer.flush()
        assert sink.batches == [{"b": 1, "c": 9}]

    asyncio.run(main())


def test_a_write_under_way_when_the_loop_is_cancelled_finishes_and_the_flush_waits_for_it() -> None:
    async def main() -> None:
        sink, writing, release = Sink(), asyncio.Event(), asyncio.Event()

        async def slow(batch: Mapping[str, int]) -> None:
            writing.set()
            await release.wait()
            await sink.write(batch)

        buffer = WriteBehind[str, int]("slow", slow, 0.001, log)
        running = asyncio.create_task(buffer.run())
        buffer.add("a", 1)
        await asyncio.wait_for(writing.wait(), 5)  # the loop took the batch and writes it
        buffer.add("b", 2)
        running.cancel()  # as the shutdown does, while its own flush begins
        flushing = asyncio.ensure_future(buffer.flush())
        await asyncio.gather(running, return_exceptions=True)
        release.set()
        await flushing
        assert sink.batches == [{"a": 1}, {"b": 2}]

    asyncio.run(main())
