"""`/healthz`, `/readyz` and `/metrics`: what orchestrators and Prometheus ask of a replica."""

from __future__ import annotations

from aiohttp import web

from router.jsonhttp import json_response
from router.lifecycle import Readiness
from router.metrics import CONTENT_TYPE, Metrics
from router.registry import Registry


class Probes:
    def __init__(self, readiness: Readiness, registry: Registry, metrics: Metrics) -> None:
        self._readiness = readiness
        self._registry = registry
        self._metrics = metrics

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready, problems = await self._readiness.check()
        if not ready:
            return json_response({"status": "unavailable", "reasons": problems}, status=503)
        status = "degraded" if problems else "ready"
        version = self._registry.snapshot.version
        return json_response({"status": status, "reasons": problems, "version": version})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
        ]
