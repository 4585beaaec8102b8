"""A pool of warm environments per version of a function.

A function's slots (router.slots) bound how many invocations of it run at once, whatever their
isolation and whichever of its versions they run. Each version (`$LATEST`, a published number)
has a pool of its own process environments, so two versions run side by side; environments are
reused while warm, started cold when none is idle, and stopped by the scaler only when idle,
never while busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace

from router.bundles import MissingBundle
from router.executors import Call, ErrorInfo, Outcome
from router.executors.environment import AnyEnvironment, Environment, InitError
from router.executors.launcher import Launcher
from router.metrics import Metrics
from router.runtimes import RuntimeUnavailable
from router.slots import Slots
from router.specs import FunctionSpec

Worker = AnyEnvironment

log = logging.getLogger("router.pool")


class Pool:
    """The process environments of one version of a function."""

    def __init__(
        self,
        function: str,
        version: str,
        spec: FunctionSpec,
        slots: Slots,
        metrics: Metrics,
        spawning: asyncio.Semaphore,
        launcher: Launcher,
    ) -> None:
        self.function = function
        self.version = version  # `$LATEST` or a published number
        self._launcher = launcher
        self.spec = spec
        self.slots = slots
        slots.pools.append(self)
        self.idle: list[Worker] = []
        self.busy: set[Worker] = set()
        self.starting = 0
        self.calls = 0  # invocations in this pool now (running, or waiting for an environment)
        self.last_used = 0.0  # monotonic time of the last invocation: the scaler's "active"
        self._metrics = metrics
        # Callers waiting for an environment at `concurrency.max`, woken by any check-in.
        self._returns: list[asyncio.Future[None]] = []
        self._spawning = spawning  # shared by all pools: cold starts are CPU-bound

    @property
    def total(self) -> int:
        return len(self.idle) + len(self.busy) + self.starting

    @property
    def in_flight(self) -> int:
        return self.slots.in_flight

    @property
    def waiting(self) -> int:
        return self.slots.waiting

    def update(self, spec: FunctionSpec) -> list[Worker]:
        """Adopt a new spec; returns idle environments of an older change of it, for stopping
        (busy ones finish their call and are stopped when they check in)."""
        stale = self.idle if spec.version != self.spec.version else []
        if stale:
            self.idle = []
        self.spec = spec
        self.slots.resize(spec.concurrency.max, spec.concurrency.per_replica)
        return stale

    async def run(self, call: Call) -> Outcome:
        """Run on a warm environment, or a cold one when none is idle; after a cold start the
        outcome carries the init duration, as Lambda's REPORT line has it."""
        self.calls += 1
        self.last_used = time.monotonic()
        try:
            return await self._run(call)
        finally:
            self.calls -= 1

    async def _run(self, call: Call) -> Outcome:
        try:
            worker, cold = await self._checkout()
        except InitError as exc:
            return Outcome("failed", 0.0, error=exc.error)
        except (MissingBundle, RuntimeUnavailable, OSError) as exc:
            return Outcome("failed", 0.0, error=ErrorInfo("Runtime.InitError", str(exc)))
        self.busy.add(worker)
        try:
            outcome = await worker.invoke(call)
            return replace(outcome, init_ms=worker.init_ms) if cold else outcome
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
            if self.total < self.slots.cap:
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
        self._wake()

    def _wake(self) -> None:
        """Everyone waiting looks again: an idle environment, or room to start one."""
        returns, self._returns = self._returns, []
        for returned in returns:
            if not returned.done():
                returned.set_result(None)

    async def _start(self, cold: bool) -> Worker:
        self.starting += 1
        try:
            async with self._spawning:
                worker = await self._launcher.start(self.function, self.spec, self.version)
        except BaseException:
            # Callers may be waiting for this start (the pool looked full): they must not wait
            # for good but look again (once this returns), and try a start of their own.
            self._wake()
            raise
        finally:
            self.starting -= 1
        self.slots.watch_workers()
        self._metrics.cold_start(self.function, worker.init_ms / 1000)
        log.info(
            "INIT function=%s version=%s pid=%d Init Duration: %.2f ms%s",
            self.function,
            self.version,
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
            if isinstance(result, Environment):
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

    async def close(self) -> None:
        workers = [*self.idle, *self.busy]
        self.idle, self.busy = [], set()
        if self in self.slots.pools:
            self.slots.pools.remove(self)
        await asyncio.gather(*(w.kill() for w in workers))
