"""Once a second, exports what no request path sees: event-loop lag, registry staleness,
dead-letter queue depths and whether Redis and RabbitMQ answer."""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

from router import logformat
from router.amqp import Broker
from router.metrics import Metrics
from router.registry import Registry

log = logging.getLogger("router.monitor")
INTERVAL_S = 1.0


class Monitor:
    def __init__(self, registry: Registry, broker: Broker, redis: Redis, metrics: Metrics) -> None:
        self._registry = registry
        self._broker = broker
        self._dropped = 0
        self._redis = redis
        self._metrics = metrics

    async def run(self) -> None:
        while True:
            asleep = time.perf_counter()
            await asyncio.sleep(INTERVAL_S)
            # A loop blocked by CPU work wakes us late; that lateness is what clients wait too.
            self._metrics.loop_lagged(max(0.0, time.perf_counter() - asleep - INTERVAL_S))
            try:
                await self.tick()
            except Exception:  # observing must never stop the router
                log.exception("monitor tick failed")

    async def tick(self) -> None:
        metrics = self._metrics
        metrics.share()  # a worker of several: its counts and gauges, written for the merge
        dropped = logformat.dropped()
        if dropped > self._dropped:  # the writer thread counts; the counter follows
            metrics.router_lines_dropped(dropped - self._dropped)
            self._dropped = dropped
        staleness_s = max(0.0, time.time() - self._registry.refreshed_at)
        metrics.registry_read(self._registry.snapshot.version, staleness_s)
        metrics.reachable("rabbitmq", self._broker.connected)
        metrics.reachable("redis", await self._redis_answers())
        if not self._broker.connected:
            return
        for function in self._registry.snapshot.functions:
            try:
                state = await self._broker.queue_state(function, dead_letters=True)
            except Exception as exc:
                log.debug("dead-letter depth of %s unavailable: %s", function, exc)
                continue
            if function in self._registry.snapshot.functions:  # not deleted meanwhile
                metrics.dead_letter_depth(function, state.ready)

    async def _redis_answers(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), 1.0))
        except Exception:
            return False
