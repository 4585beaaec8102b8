"""Write-behind: what the hot path records waits in memory and reaches Redis in batches, from a
loop, so that no request or invocation waits for Redis (usage, invocation output, records).

A batch that Redis refuses is kept for the next try, ahead of what came in meanwhile. What
waits is bounded, when a bound is given: past it the oldest goes (and is reported), because
memory the router needs to do the work must not go to what it writes about the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

from redis.exceptions import RedisError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def newer(older: V, newer: V) -> V:
    """The default merge of a value kept from a failed write with one that came since."""
    return newer


class WriteBehind(Generic[K, V]):
    """Values by key, in the order they first came, written by `write` every `interval_s`.

    `add` replaces a key's value; a store that accumulates (counters) changes the value it
    `get`s in place. When a write fails, a key both kept and added since gets
    `merge(kept, since)`. `limit` bounds the total `weigh`t (each value weighs 1 by default);
    past it the oldest values go, each passed to `dropped`.
    """

    def __init__(
        self,
        what: str,
        write: Callable[[Mapping[K, V]], Awaitable[None]],
        interval_s: float,
        log: logging.Logger,
        *,
        merge: Callable[[V, V], V] = newer,
        limit: int | None = None,
        weigh: Callable[[V], int] | None = None,
        dropped: Callable[[V], None] | None = None,
    ) -> None:
        self._what = what
        self._write = write
        self._interval_s = interval_s
        self._log = log
        self._merge = merge
        self._limit = limit
        self._weigh = weigh
        self._dropped = dropped
        # Ordered for dropping the oldest in O(1): a dict's first key costs a scan past every
        # key removed before it, which made a long outage quadratic.
        self._pending: OrderedDict[K, V] = OrderedDict()
        self._weight = 0  # the values' total weight, when weighed (else their count is)
        self._writing: asyncio.Future[None] | None = None  # the loop's write under way

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def weight(self) -> int:
        """What the waiting values weigh (their count when they are not weighed)."""
        return self._weight if self._weigh is not None else len(self._pending)

    def get(self, key: K) -> V | None:
        return self._pending.get(key)

    def add(self, key: K, value: V) -> None:
        pending, weigh, limit = self._pending, self._weigh, self._limit
        if weigh is None:  # the common case, kept to a dict's own cost: this is the hot path
            pending[key] = value
            if limit is not None and len(pending) > limit:
                self._drop_oldest()
            return
        previous = pending.get(key)
        self._weight += weigh(value) - (0 if previous is None else weigh(previous))
        pending[key] = value
        if limit is not None and self._weight > limit:
            self._drop_oldest()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if self._pending:
                # Shielded: the shutdown cancels this loop while it may be writing, and a
                # write cut short would lose its batch; `flush` waits for it instead.
                self._writing = asyncio.ensure_future(self._flush())
                await asyncio.shield(self._writing)

    async def flush(self) -> None:
        """Write what waits now, after any write the loop has under way (the shutdown's last
        call: what the loop was writing is not lost, nor written twice)."""
        if self._writing is not None and not self._writing.done():
            await asyncio.wait([self._writing])
        await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, weight = self._pending, self._weight
        self._pending, self._weight = OrderedDict(), 0
        try:
            await self._write(batch)
        except RedisError as exc:
            self._keep(batch, weight)
            self._log.warning("%d %s not written yet: %s", len(batch), self._what, exc)

    def _keep(self, batch: OrderedDict[K, V], weight: int) -> None:
        """A refused batch goes back ahead of what came since, within the bound."""
        weigh = self._weigh
        weight += self._weight
        for key, since in self._pending.items():
            kept = batch.get(key)
            if kept is None:
                batch[key] = since
                continue
            merged = batch[key] = self._merge(kept, since)
            if weigh is not None:
                weight += weigh(merged) - weigh(kept) - weigh(since)
        self._pending, self._weight = batch, weight
        if self._limit is not None and self.weight > self._limit:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        limit, weigh, dropped = self._limit or 0, self._weigh, self._dropped
        while self.weight > limit:
            _, value = self._pending.popitem(last=False)
            if weigh is not None:
                self._weight -= weigh(value)
            if dropped is not None:
                dropped(value)
