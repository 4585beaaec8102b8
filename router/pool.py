"""A function's pool: its concurrency slots and, for process isolation, its warm environments.

Slots bound how many invocations of the function run at once in this replica, whatever their
isolation; over `concurrency.max` a sync caller is throttled and a queued event waits. Process
environments are reused while warm, started cold when none is idle, and stopped by the scaler
only when idle, never while busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Mapping

from router.executors import Call, Outcome
from router.executors.process import InitError, Worker
from router.metrics import Metrics
from router.specs import FunctionSpec

log = logging.getLogger("router.pool")


class Throttled(Exception):
    """The function is running `concurrency.max` invocations already."""


class TurnedAway(Exception):
    """The replica is shutting down: a call still waiting for a slot will not get one."""


class Pool:
    def __init__(
        self, function: str, spec: FunctionSpec, metrics: Metrics, spawning: asyncio.Semaphore
    ) -> None:
        self.function = function
        self.spec = spec
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.idle: list[Worker] = []
        self.busy: set[Worker] = set()
        self.starting = 0
        self._metrics = metrics
        # Callers waiting for an environment at `concurrency.max`, woken by any check-in.
        self._returns: list[asyncio.Future[None]] = []
        self._spawning = spawning  # shared by all pools: cold starts are CPU-bound
        # Invocations running now are the slots taken, read when Prometheus scrapes.
        metrics.child(metrics.concurrent, function).set_function(lambda: self.in_flight)

    @property
    def total(self) -> int:
        return len(self.idle) + len(self.busy) + self.starting

    def update(self, spec: FunctionSpec) -> list[Worker]:
        """Adopt a new version; returns idle environments of the old one, for stopping."""
        stale = self.idle if spec.version != self.spec.version else []
        if stale:
            self.idle = []
        self.spec = spec
        self._hand_over()  # a raised `concurrency.max` lets waiters in at once
        return stale

    def take(self) -> bool:
        """Take a free slot if there is one and nobody waits for it (the common case: no
        coroutine, no lock, no future)."""
        if self.in_flight < self.spec.concurrency.max and not self._waiters:
            self.in_flight += 1
            return True
        return False

    async def acquire(self, wait: bool) -> None:
        """Take a slot; over `concurrency.max` wait in line (or raise Throttled)."""
        if self.take():
            return
        if not wait:
            raise Throttled(self.function)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # `_hand_over` counted our slot already
        except asyncio.CancelledError:
            if waiter.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            else:
                self.release()  # given a slot and cancelled before using it: pass it on
            raise

    def turn_away(self) -> None:
        """Shutting down: callers waiting for a slot get TurnedAway (their prefetched messages
        go back to the queue at once instead of running in the grace period)."""
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(TurnedAway(self.function))

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def release(self) -> None:
        self.in_flight -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        """Give free slots to waiters, first come first served (after a release or a raise of
        `concurrency.max`)."""
        while self._waiters and self.in_flight < self.spec.concurrency.max:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    async def run(self, call: Call) -> tuple[Outcome, float, float | None]:
        """Run on a warm environment, or a cold one when none is idle.

        Returns the outcome, the environment's max memory used (MB) and, after a cold start,
        its init duration (ms), as Lambda's REPORT line has them.
        """
        try:
            worker, cold = await self._checkout()
        except InitError as exc:
            return Outcome("failed", 0.0, error=exc.error), 0.0, None
        self.busy.add(worker)
        try:
            outcome, memory_mb = await worker.invoke(call, self.spec.memory_mb)
            return outcome, memory_mb, worker.init_ms if cold else None
        finally:
            self.busy.discard(worker)
            await self._checkin(worker)

    async def _checkout(self) -> tuple[Worker, bool]:
        while True:
            while self.idle:
                worker = self.idle.pop()  # the most recently used: its caches are warm
                if worker.alive:
                    return worker, False
                await worker.kill()  # died while idle (killed from outside): no call's failure
            if self.total < self.spec.concurrency.max:
                return await self._start(cold=True), True
            await self._returned()  # the scaler is starting environments for us

    async def _returned(self) -> None:
        returned: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._returns.append(returned)
        try:
            await returned
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._returns.remove(returned)
            raise

    async def _checkin(self, worker: Worker) -> None:
        current = worker.alive and worker.version == self.spec.version
        if current:
            self.idle.append(worker)
        else:
            await worker.kill()
        # Everyone waiting looks again: an idle environment, or room to start one.
        returns, self._returns = self._returns, []
        for returned in returns:
            if not returned.done():
                returned.set_result(None)

    async def _start(self, cold: bool) -> Worker:
        self.starting += 1
        try:
            async with self._spawning:
                worker = await Worker.start(
                    self.function,
                    self.spec.version,
                    _init(self.spec),
                    environment(self.function, self.spec),
                )
        finally:
            self.starting -= 1
        self._watch_gauges()
        self._metrics.cold_starts.labels(self.function).inc()
        self._metrics.init_duration.labels(self.function).observe(worker.init_ms / 1000)
        log.info(
            "INIT function=%s pid=%d Init Duration: %.2f ms%s",
            self.function,
            worker.pid,
            worker.init_ms,
            " (cold start)" if cold else "",
        )
        return worker

    async def grow(self, count: int) -> None:
        """Start `count` environments ahead of demand."""
        results = await asyncio.gather(
            *(self._start(cold=False) for _ in range(count)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Worker):
                await self._checkin(result)
            else:
                log.warning("could not start an environment for %s: %s", self.function, result)

    async def shrink(self, count: int, keep_warm_s: float) -> None:
        """Stop up to `count` environments idle for at least `keep_warm_s`, oldest first."""
        now = time.monotonic()
        victims = sorted(
            (w for w in self.idle if now - w.idle_since >= keep_warm_s), key=lambda w: w.idle_since
        )[:count]
        for worker in victims:
            self.idle.remove(worker)
        await asyncio.gather(*(w.stop() for w in victims))

    def idle_ages(self) -> list[float]:
        now = time.monotonic()
        return [now - w.idle_since for w in self.idle]

    def _watch_gauges(self) -> None:
        """`router_workers` is read from the pool when scraped, so a call costs no gauge
        updates. Set once an environment exists, so functions that never had one show none."""
        workers, child = self._metrics.workers, self._metrics.child
        child(workers, self.function, "busy").set_function(lambda: len(self.busy))
        child(workers, self.function, "idle").set_function(lambda: len(self.idle))

    async def close(self) -> None:
        workers = [*self.idle, *self.busy]
        self.idle, self.busy = [], set()
        await asyncio.gather(*(w.kill() for w in workers))


def _init(spec: FunctionSpec) -> dict[str, object]:
    return {"handler": spec.handler, "memory_mb": spec.memory_mb, "timeout_s": spec.timeout_s}


def environment(function: str, spec: FunctionSpec) -> Mapping[str, str]:
    """Lambda's variables plus the function's own `env`. The child inherits the router's working
    directory, where `python -m` finds handler modules, as the router does."""
    return {
        **os.environ,
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_VERSION": str(spec.version),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[{spec.version}]{os.getpid()}",
        "AWS_EXECUTION_ENV": "trigger-router_python3",
        "AWS_REGION": os.environ.get("AWS_REGION", "local"),
        **spec.env,
    }
