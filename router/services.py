"""The parts of a running router, built once by `create_app` and shared by the HTTP handlers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web
from redis.asyncio import Redis

from router.admin import Admin
from router.amqp import Broker, Consumers
from router.bundles import Bundles
from router.connections import Connections, Descriptors
from router.dispatcher import Dispatcher
from router.dlq import DeadLetters
from router.executors.cells import Cells
from router.ingress import Ingress
from router.invocations import InvocationStore
from router.invoker import Invoker
from router.leases import Leases
from router.logstore import LogStore
from router.metrics import Metrics
from router.names import Names
from router.ratelimit import RateLimiter
from router.registry import Registry
from router.replays import Replays
from router.scaler import Scaler
from router.settings import Settings
from router.shutdown import Deadline
from router.usage import Usage


@dataclass
class Services:
    settings: Settings
    names: Names
    metrics: Metrics
    redis: Redis
    registry: Registry
    broker: Broker
    invoker: Invoker
    store: InvocationStore
    ingress: Ingress
    consumers: Consumers
    admin: Admin
    scaler: Scaler
    dead_letters: DeadLetters
    dispatcher: Dispatcher
    rate_limiter: RateLimiter
    replays: Replays
    usage: Usage
    logs: LogStore
    bundles: Bundles
    cells: Cells
    leases: Leases

    started: bool = False  # Redis, RabbitMQ and the registry were all reached once
    started_event: asyncio.Event = field(default_factory=asyncio.Event)  # set with `started`
    draining: bool = False  # shutting down: no new events
    stopping: Deadline | None = None  # set when a shutdown begins: all of it ends by then
    drained: asyncio.Future[None] | None = None  # the drain, once begun
    connections: Connections | None = None  # HTTP connections, once the server listens
    descriptors: Descriptors = field(default_factory=Descriptors)

    async def readiness(self) -> tuple[bool, list[str]]:
        """Whether this replica serves, and what is wrong. Once started it keeps serving from
        its in-memory registry while Redis or RabbitMQ is away: degraded, not down."""
        problems = []
        try:
            await asyncio.wait_for(self.redis.ping(), 1.0)
        except Exception as exc:
            problems.append(f"redis unreachable: {exc!r}")
        if not self.broker.connected:
            problems.append("rabbitmq unreachable")
        if not self.registry.loaded:
            problems.append("registry not loaded")
        if self.draining:
            problems.append("shutting down")
        problems += self.descriptors.problems()
        if self.connections is not None:
            problems += self.connections.problems()
        return self.started and not self.draining, problems


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
