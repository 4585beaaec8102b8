"""The router's endless background loops (registry watch, scaler, monitor, the writers, ...),
run together and kept running: a loop that raises or returns is logged, counted in
`router_background_restarts_total{loop}` and started again after RESTART_S, so that a bug in
one never ends it silently while the router carries on. Cancelling `run` stops every loop and
returns once all have ended (the shutdown does, after the last writes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from router.metrics import Metrics

log = logging.getLogger("router")
RESTART_S = 1.0  # before a background loop that failed runs again

Loop = Callable[[], Awaitable[None]]


class Background:
    def __init__(self, metrics: Metrics, restart_s: float = RESTART_S) -> None:
        self._metrics = metrics
        self._restart_s = restart_s

    async def run(self, loops: Mapping[str, Loop]) -> None:
        """Run every loop until cancelled. A TaskGroup, so that a cancellation is passed to
        each loop and waited for: none is left running behind the shutdown."""
        async with asyncio.TaskGroup() as group:
            for name, loop in loops.items():
                group.create_task(self.keep_running(name, loop), name=f"router {name}")

    async def keep_running(self, name: str, loop: Loop) -> None:
        self._metrics.background_loop(name)
        while True:
            try:
                await loop()
                log.error("%s stopped; starting it again in %.0f s", name, self._restart_s)
            except Exception:
                log.exception("%s failed; starting it again in %.0f s", name, self._restart_s)
            self._metrics.background_restart(name)
            await asyncio.sleep(self._restart_s)
