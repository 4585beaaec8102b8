"""The parts of a running router, built once by `create_app` and shared by the HTTP handlers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from router.admin import Admin
from router.broker import Broker
from router.consumer import Consumers
from router.dlq import DeadLetters
from router.ingress import Ingress
from router.invocations import InvocationStore
from router.invoker import Invoker
from router.metrics import Metrics
from router.names import Names
from router.registry import Registry
from router.scaler import Scaler
from router.settings import Settings


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

    async def not_ready(self) -> list[str]:
        """Reasons this replica cannot serve yet; empty when it can."""
        reasons = []
        try:
            await self.redis.ping()
        except Exception as exc:
            reasons.append(f"redis unreachable: {exc}")
        if not self.broker.connected:
            reasons.append("rabbitmq unreachable")
        if not self.registry.loaded:
            reasons.append("registry not loaded")
        return reasons


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
