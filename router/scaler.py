"""The scaler: sizes each function's pools of process environments from its queue depth and
in-flight count, several times a second. The decision is `plan`, a pure function.

A function has a pool per version it runs. The one used last (`$LATEST` until another ran) is
its active pool: it gets the warm minimum and the queue's backlog; the others are sized by
their own calls and shrink to nothing once idle past the keep-warm period."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from router.amqp import Broker
from router.invoker import Invoker
from router.metrics import Metrics
from router.pool import Pool
from router.registry import Registry
from router.specs import FunctionSpec

log = logging.getLogger("router.scaler")


def plan(
    *,
    total: int,
    busy: int,
    demand: int,
    idle_ages: Sequence[float],
    minimum: int,
    maximum: int,
    keep_warm_s: float,
) -> tuple[int, int]:
    """(environments to start, idle environments to stop).

    Up at once to cover the demand (events running, waiting and queued) within [min, max];
    down only by environments idle for the whole keep-warm period, never below `min` or the
    demand, and never a busy one.
    """
    target = min(maximum, max(minimum, demand, busy))
    if target > total:
        return target - total, 0
    reapable = sum(1 for age in idle_ages if age >= keep_warm_s)
    return 0, min(reapable, total - target)


class Scaler:
    def __init__(
        self,
        registry: Registry,
        invoker: Invoker,
        broker: Broker,
        metrics: Metrics,
        interval_s: float,
        keep_warm_s: float,
        max_environments: int,
    ) -> None:
        self._registry = registry
        self._invoker = invoker
        self._broker = broker
        self._metrics = metrics
        self._interval_s = interval_s
        self._keep_warm_s = keep_warm_s
        self._growing: set[asyncio.Future[None]] = set()
        # Ahead-of-demand starts (min, backlog) stop at this many environments per replica;
        # beyond it environments start only for events actually being run.
        self._max_environments = max_environments

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # one bad tick must not end scaling for good
                log.exception("scaler tick failed")
            await asyncio.sleep(self._interval_s)

    async def tick(self) -> None:
        snapshot = self._registry.snapshot
        for function, spec in snapshot.functions.items():
            ready = await self._depth(function)
            if ready is None or spec.isolation != "process":
                continue
            latest = self._invoker.pool(function, spec)
            pools = self._invoker.pools_of(function)
            active = max(pools, key=lambda p: p.last_used, default=latest)
            for pool in pools:
                await self._size(pool, spec, pool is active, ready)

    async def _size(self, pool: Pool, spec: FunctionSpec, active: bool, ready: int) -> None:
        backlog = pool.waiting + ready if active else 0
        start, stop = plan(
            total=pool.total,
            busy=len(pool.busy),
            demand=pool.calls + backlog,
            idle_ages=pool.idle_ages(),
            minimum=spec.concurrency.min if active else 0,
            maximum=spec.concurrency.replica_cap,
            keep_warm_s=self._keep_warm_s,
        )
        start = min(start, max(0, self._max_environments - self._invoker.environments()))
        if start:
            growing = asyncio.ensure_future(pool.grow(start))  # up at once, off this loop
            self._growing.add(growing)
            growing.add_done_callback(self._growing.discard)
        if stop:
            await pool.shrink(stop, self._keep_warm_s)

    async def _depth(self, function: str) -> int | None:
        """The queue's ready count (its consumers are exported beside it)."""
        try:
            state = await self._broker.queue_state(function)
        except Exception as exc:  # the broker may be away; scaling waits for it
            log.debug("queue depth of %s unavailable: %s", function, exc)
            return None
        if function not in self._registry.snapshot.functions:
            return None  # deleted while we asked: its gauges are gone and stay gone
        self._metrics.queue_state(function, state.ready, state.consumers)
        return state.ready
