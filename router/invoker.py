"""Runs one invocation through the function's executor and reports it: the single place where
invocations are counted, timed and billed, whatever the event source."""

from __future__ import annotations

import logging
from typing import Any

from router.executors import Call, Executor, Outcome
from router.metrics import Metrics
from router.specs import FunctionSpec

log = logging.getLogger("router.invoker")


class Invoker:
    def __init__(self, executor: Executor, metrics: Metrics) -> None:
        self._executor = executor
        self._metrics = metrics

    async def invoke(
        self, function: str, spec: FunctionSpec, event: Any, request_id: str
    ) -> Outcome:
        concurrent = self._metrics.concurrent.labels(function)
        concurrent.inc()
        try:
            outcome = await self._executor.run(Call(function, spec, event, request_id))
        finally:
            concurrent.dec()
        gb_seconds = outcome.billed_ms / 1000 * spec.memory_mb / 1024
        self._metrics.invocation(function, outcome.status, outcome.duration_ms / 1000, gb_seconds)
        log.info(
            "REPORT RequestId: %s Function: %s Status: %s Duration: %.2f ms "
            "Billed Duration: %d ms Memory Size: %d MB",
            request_id,
            function,
            outcome.status,
            outcome.duration_ms,
            outcome.billed_ms,
            spec.memory_mb,
        )
        return outcome

    async def close(self) -> None:
        await self._executor.close()
