"""The parts of a running router, built once by `build_services`: the lifecycle and the
background loops work with them, and `create_app` hands each HTTP route only the parts it uses."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from router.amqp import Broker, Consumers
from router.bundles import Bundles
from router.dispatcher import Dispatcher
from router.dlq import DeadLetters
from router.enqueue import Enqueuer
from router.executors.cells import Cells
from router.invocation import InvocationService
from router.invocations import InvocationStore
from router.invoker import Invoker
from router.leases import Leases
from router.lifecycle import Lifecycle, Readiness
from router.logstore import LogStore
from router.metrics import Metrics
from router.names import Names
from router.ratelimit import RateLimiter
from router.registration import Registration
from router.registry import Registry
from router.replays import Replays
from router.scaler import Scaler
from router.settings import Settings
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
    enqueuer: Enqueuer
    invocations: InvocationService
    consumers: Consumers
    registration: Registration
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
    lifecycle: Lifecycle  # where the router is in its life: state, apart from the parts
    readiness: Readiness  # whether it serves, from that state and the parts it depends on


SERVICES = web.AppKey("services", Services)
