"""Run-once per event id for functions declared `idempotent`, within a window.

The first delivery claims the event id in Redis; a duplicate that arrives later is answered from
the stored result (and counted) instead of running again. A failed run releases the claim so
the event's retries can run. With Redis away the handler runs anyway: at-least-once delivery
beats dropping an event that may never have run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.executors import ErrorInfo, Outcome
from router.metrics import Metrics
from router.names import Names
from router.specs import FunctionSpec

log = logging.getLogger("router.idempotency")
RUNNING = b"running"
POLL_S = 0.05


class Idempotency:
    def __init__(self, redis: Redis, names: Names, metrics: Metrics, window_s: int) -> None:
        self._redis = redis
        self._names = names
        self._metrics = metrics
        self._window_s = window_s

    async def run(
        self,
        function: str,
        spec: FunctionSpec,
        event_id: str | None,
        invoke: Callable[[], Awaitable[Outcome]],
    ) -> Outcome:
        if not spec.idempotent or not event_id:
            return await invoke()
        key = self._names.idempotency(function, event_id)
        try:
            claimed = await self._redis.set(key, RUNNING, nx=True, ex=self._window_s)
        except RedisError as exc:
            log.warning("idempotency unavailable (%s); running %s anyway", exc, event_id)
            return await invoke()
        if not claimed:
            return await self._duplicate(function, key, spec.timeout_s)
        outcome = await invoke()
        await self._settle(key, outcome)
        return outcome

    async def _settle(self, key: str, outcome: Outcome) -> None:
        try:
            if outcome.status == "succeeded":
                stored = orjson.dumps({"result": outcome.result})
                await self._redis.set(key, stored, ex=self._window_s)
            else:
                await self._redis.delete(key)
        except RedisError as exc:
            log.warning("could not store the idempotency record %s: %s", key, exc)

    async def _duplicate(self, function: str, key: str, timeout_s: float) -> Outcome:
        """Answer from the first run's result, waiting for it while that run is in progress."""
        deadline = time.monotonic() + timeout_s + 1
        while True:
            raw = await self._redis.get(key)
            if raw is None or raw != RUNNING or time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_S)
        self._metrics.duplicate(function)
        if raw is None or raw == RUNNING:
            error = ErrorInfo("DuplicateInProgress", "the same event is running elsewhere")
            return Outcome("failed", 0.0, error=error, duplicate=True)
        stored: dict[str, Any] = orjson.loads(raw)
        return Outcome("succeeded", 0.0, result=stored["result"], duplicate=True)
