"""Runs one invocation and reports it: the single place where invocations are admitted
(concurrency), run (by isolation), counted, timed, billed and logged, whatever the source."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from router.executors import Call, ErrorInfo, Executor, Outcome
from router.executors.launcher import Launcher
from router.executors.local import LocalExecutor
from router.idempotency import Idempotency
from router.invocations import InvocationStore, Record, finished
from router.logstore import LogStore
from router.metrics import Metrics
from router.pool import Pool, Throttled
from router.registry import Snapshot
from router.specs import FunctionSpec
from router.usage import Usage

log = logging.getLogger("router.invoker")

__all__ = ["Invoker", "Throttled"]


class Environments:
    """The executor of `process` isolation: the function's pool of process environments."""

    def __init__(self, invoker: Invoker) -> None:
        self._invoker = invoker

    async def run(self, call: Call) -> Outcome:
        return await self._invoker.pool(call.function, call.spec).run(call)


class Invoker:
    def __init__(
        self,
        local: LocalExecutor,
        launcher: Launcher,
        metrics: Metrics,
        idempotency: Idempotency,
        usage: Usage,
        logs: LogStore,
        store: InvocationStore,
    ) -> None:
        self._local = local
        self._store = store
        self._launcher = launcher
        # One table from isolation to executor: no branch on how a handler runs.
        self._executors: dict[str, Executor] = {
            "inline": local,
            "thread": local,
            "process": Environments(self),
        }
        self._idempotency = idempotency
        self._usage = usage
        self._logs = logs
        self._metrics = metrics
        self.pools: dict[str, Pool] = {}
        self._stopping: set[asyncio.Future[None]] = set()
        self._spawning = asyncio.Semaphore(2 * (os.cpu_count() or 1))

    def pool(self, function: str, spec: FunctionSpec) -> Pool:
        pool = self.pools.get(function)
        if pool is None:
            pool = self.pools[function] = Pool(
                function, spec, self._metrics, self._spawning, self._launcher
            )
        elif pool.spec.version != spec.version:
            for worker in pool.update(spec):
                stopping = asyncio.ensure_future(worker.stop())
                self._stopping.add(stopping)
                stopping.add_done_callback(self._stopping.discard)
        return pool

    async def invoke(
        self,
        function: str,
        spec: FunctionSpec,
        event: Any,
        request_id: str,
        *,
        event_id: str | None = None,
        wait: bool = True,
        client_context: str | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> Outcome:
        """Run the call; with `wait=False` raise Throttled at `concurrency.max` instead.

        An idempotent function's duplicate (same event id) is answered without running.
        """
        run = functools.partial(
            self._run, function, spec, event, request_id, wait, client_context, on_start
        )
        if spec.idempotent and event_id:
            return await self._idempotency.run(function, spec, event_id, run)
        return await run()

    async def _run(
        self,
        function: str,
        spec: FunctionSpec,
        event: Any,
        request_id: str,
        wait: bool,
        client_context: str | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> Outcome:
        pool = self.pool(function, spec)
        try:
            if not pool.take():
                await pool.acquire(wait)
        except Throttled:
            self._metrics.child(self._metrics.throttles, function).inc()
            raise
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "START RequestId: %s Function: %s Version: %d",
                request_id,
                function,
                spec.version,
                extra={"request_id": request_id, "function": function},
            )
        if on_start is not None:
            on_start()  # it has a slot now: it is running, no longer waiting
        call = Call(function, spec, event, request_id, client_context)
        started = time.time()
        try:
            outcome = await self._executors[spec.isolation].run(call)
        finally:
            pool.release()
        self._report(function, spec, request_id, outcome)
        if not wait and outcome.error is not None:
            # A sync caller sees no traceback; the record (by request id) and the log keep it.
            self._store.save(_sync_record(function, spec.version, request_id, started, outcome))
        return outcome

    def _report(
        self,
        function: str,
        spec: FunctionSpec,
        request_id: str,
        outcome: Outcome,
    ) -> None:
        memory_mb = outcome.max_memory_mb
        billed_ms = outcome.billed_ms
        gb_seconds = billed_ms / 1000 * spec.memory_mb / 1024
        self._metrics.invocation(function, outcome.status, outcome.duration_ms / 1000, gb_seconds)
        self._usage.record(function, billed_ms, spec.memory_mb)
        if memory_mb:
            self._metrics.child(self._metrics.max_memory, function).set(memory_mb)
        report = _report_line(request_id, spec.memory_mb, outcome)
        error = outcome.error
        if log.isEnabledFor(logging.INFO):  # every invocation, its failure named
            failure = "" if error is None else f"\tError: {error.type}: {error.message[:300]}"
            extra = {"request_id": request_id, "function": function}
            log.info("%s\tStatus: %s%s", report, outcome.status, failure, extra=extra)
        # As Lambda writes them: every invocation's START, output, error and END, REPORT.
        self._logs.append(
            function,
            request_id,
            (
                f"START RequestId: {request_id} Version: {spec.version}\n{outcome.logs}"
                f"{_failure(error)}END RequestId: {request_id}\n{report}\n"
            ),
            spec.log_max_entries,
            spec.log_retention_s,
        )

    def turn_away(self) -> None:
        """Shutting down: invocations still waiting for a slot raise TurnedAway."""
        for pool in self.pools.values():
            pool.turn_away()

    def environments(self) -> int:
        """Process environments of every function, running, idle or starting."""
        return sum(pool.total for pool in self.pools.values())

    async def reconcile(self, snapshot: Snapshot) -> None:
        """Close the pools of functions that left the registry."""
        for function in set(self.pools) - set(snapshot.functions):
            await self.pools.pop(function).close()

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
        self.pools.clear()
        await self._local.close()


def _sync_record(
    function: str, version: int, request_id: str, started: float, outcome: Outcome
) -> Record:
    return {
        "id": request_id,
        "function": function,
        "function_version": version,
        "attempt": 1,
        "created_at": started,
        "started_at": started,
        **finished(outcome),
    }


def _failure(error: ErrorInfo | None) -> str:
    """An error's log lines: type and message, then its trace (never shown to webhook senders,
    kept here for whoever may read the logs)."""
    if error is None:
        return ""
    trace = "".join(f"{line}\n" for line in error.trace)
    return f"[ERROR] {error.type}: {error.message}\n{trace}"


def _report_line(request_id: str, memory_size_mb: int, outcome: Outcome) -> str:
    """Lambda's REPORT line."""
    memory_mb, init_ms = outcome.max_memory_mb, outcome.init_ms
    return (
        f"REPORT RequestId: {request_id}\tDuration: {outcome.duration_ms:.2f} ms\t"
        f"Billed Duration: {outcome.billed_ms} ms\tMemory Size: {memory_size_mb} MB\t"
        f"Max Memory Used: {round(memory_mb)} MB"
        + ("" if init_ms is None else f"\tInit Duration: {init_ms:.2f} ms")
    )
