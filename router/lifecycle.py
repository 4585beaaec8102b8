"""Where a running router is in its life (starting, serving, draining), and whether it serves:
state kept apart from the parts it describes, so that what changes is in one small place."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis

from router.amqp import Broker
from router.connections import Connections, Descriptors
from router.registry import Registry
from router.shutdown import Deadline


@dataclass
class Lifecycle:
    started: bool = False  # Redis, RabbitMQ and the registry were all reached once
    started_event: asyncio.Event = field(default_factory=asyncio.Event)  # set with `started`
    draining: bool = False  # shutting down: no new events
    stopping: Deadline | None = None  # set when a shutdown begins: all of it ends by then
    drained: asyncio.Future[None] | None = None  # the drain, once begun

    def start(self) -> None:
        self.started = True
        self.started_event.set()


class Readiness:
    """What `/readyz` answers: the lifecycle, the dependencies and the server's own limits."""

    def __init__(
        self, lifecycle: Lifecycle, redis: Redis, broker: Broker, registry: Registry
    ) -> None:
        self._lifecycle = lifecycle
        self._redis = redis
        self._broker = broker
        self._registry = registry
        self.connections: Connections | None = None  # HTTP connections, once the server listens
        self.descriptors = Descriptors()

    async def check(self) -> tuple[bool, list[str]]:
        """Whether this replica serves, and what is wrong. Once started it keeps serving from
        its in-memory registry while Redis or RabbitMQ is away: degraded, not down."""
        problems = []
        try:
            await asyncio.wait_for(self._redis.ping(), 1.0)
        except Exception as exc:
            problems.append(f"redis unreachable: {exc!r}")
        if not self._broker.connected:
            problems.append("rabbitmq unreachable")
        if not self._registry.loaded:
            problems.append("registry not loaded")
        lifecycle = self._lifecycle
        if lifecycle.draining:
            problems.append("shutting down")
        problems += self.descriptors.problems()
        if self.connections is not None:
            problems += self.connections.problems()
        return lifecycle.started and not lifecycle.draining, problems
