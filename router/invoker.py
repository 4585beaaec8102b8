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

from router import logformat
from router.executors import Call, ErrorInfo, Executor, Outcome
from router.executors.launcher import Launcher
from router.executors.local import LocalExecutor
from router.idempotency import Idempotency
from router.invocations import InvocationStore, Record, finished
from router.leases import Leases
from router.logstore import LogStore
from router.metrics import Metrics
from router.pool import Pool
from router.registry import Snapshot
from router.slots import Slots, Throttled
from router.specs import LATEST, FunctionSpec
from router.usage import Usage

log = logging.getLogger("router.invoker")

__all__ = ["Invoker", "Throttled"]


class Environments:
    """The executor of `process` isolation: the function's pool of process environments."""

    def __init__(self, invoker: Invoker) -> None:
        self._invoker = invoker

    async def run(self, call: Call) -> Outcome:
        return await self._invoker.pool(call.function, call.spec, call.version).run(call)


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
        leases: Leases,
    ) -> None:
        self._local = local
        self._leases = leases
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
        self.pools: dict[tuple[str, str], Pool] = {}  # by function and version
        self.slots: dict[str, Slots] = {}  # by function, shared by its versions
        self._stopping: set[asyncio.Future[None]] = set()
        self._spawning = asyncio.Semaphore(2 * (os.cpu_count() or 1))

    def pool(self, function: str, spec: FunctionSpec, version: str = LATEST) -> Pool:
        """The pool of one version of the function (`$LATEST` or a published number)."""
        pool = self.pools.get((function, version))
        if pool is None:
            slots = self.slots.get(function)
            if slots is None:
                slots = self.slots[function] = Slots(
                    function,
                    spec.concurrency.max,
                    self._metrics,
                    self._leases,
                    spec.concurrency.per_replica,
                )
            pool = self.pools[function, version] = Pool(
                function, version, spec, slots, self._metrics, self._spawning, self._launcher
            )
        elif pool.spec is not spec:  # a registry change: adopt it (cheap when nothing moved)
            for worker in pool.update(spec):
                stopping = asyncio.ensure_future(worker.stop())
                self._stopping.add(stopping)
                stopping.add_done_callback(self._stopping.discard)
        return pool

    def pools_of(self, function: str) -> list[Pool]:
        slots = self.slots.get(function)
        return list(slots.pools) if slots is not None else []

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
        version: str = LATEST,
        qualifier: str | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> Outcome:
        """Run the call on `version` of the function (`spec` is that version's); with
        `wait=False` raise Throttled at `concurrency.max` instead. `qualifier` is the alias or
        version the caller named, for the invoked ARN.

        An idempotent function's duplicate (same event id) is answered without running.
        """
        call = Call(function, spec, event, request_id, client_context, version, qualifier)
        run = functools.partial(self._run, call, wait, on_start)
        if spec.idempotent and event_id:
            return await self._idempotency.run(function, spec, event_id, run)
        return await run()

    async def _run(
        self, call: Call, wait: bool, on_start: Callable[[], None] | None = None
    ) -> Outcome:
        function, spec, request_id = call.function, call.spec, call.request_id
        slots = self.pool(function, spec, call.version).slots
        try:
            if not slots.take():
                await slots.acquire(wait)
        except Throttled:
            self._metrics.throttled(function)
            raise
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "START RequestId: %s Function: %s Version: %s",
                request_id,
                function,
                call.version,
                extra={"request_id": request_id, "function": function},
            )
        if on_start is not None:
            on_start()  # it has a slot now: it is running, no longer waiting
        started = time.time()
        try:
            outcome = await self._executors[spec.isolation].run(call)
        finally:
            slots.release()
        self._report(call, outcome)
        if not wait and outcome.error is not None:
            # A sync caller sees no traceback; the record (by request id) and the log keep it.
            self._store.save(_sync_record(function, call.version, request_id, started, outcome))
        return outcome

    def _report(self, call: Call, outcome: Outcome) -> None:
        function, spec, request_id = call.function, call.spec, call.request_id
        memory_mb = outcome.max_memory_mb
        billed_ms = outcome.billed_ms
        gb_seconds = billed_ms / 1000 * spec.memory_mb / 1024
        self._metrics.invocation(function, outcome.status, outcome.duration_ms / 1000, gb_seconds)
        self._usage.record(function, billed_ms, spec.memory_mb)
        if memory_mb:
            self._metrics.memory_used(function, memory_mb)
        report = _report_line(request_id, spec.memory_mb, outcome)
        error = outcome.error
        if log.isEnabledFor(logging.INFO):  # every invocation, its failure named
            failure = "" if error is None else f"\tError: {error.type}: {error.message[:300]}"
            line = f"{report}\tStatus: {outcome.status}\tVersion: {call.version}{failure}"
            logformat.info(log, line, request_id=request_id, function=function)
        # As Lambda writes them: every invocation's START, output, error and END, REPORT.
        self._logs.append(
            function,
            request_id,
            invocation_log(call, outcome, report),
            spec.log_max_entries,
            spec.log_retention_s,
        )

    def turn_away(self) -> None:
        """Shutting down: invocations still waiting for a slot raise TurnedAway."""
        for slots in self.slots.values():
            slots.turn_away()

    def environments(self) -> int:
        """Process environments of every function, running, idle or starting."""
        return sum(pool.total for pool in self.pools.values())

    async def reconcile(self, snapshot: Snapshot) -> None:
        """Close the pools of functions and versions that left the registry."""
        for function, version in list(self.pools):
            if snapshot.version_target(function, version) is None:
                await self.pools.pop((function, version)).close()
        for function in set(self.slots) - set(snapshot.functions):
            self.slots.pop(function).close()

    async def close(self) -> None:
        for slots in self.slots.values():
            slots.stop()
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
        self.pools.clear()
        await self._local.close()


def invocation_log(call: Call, outcome: Outcome, report: str | None = None) -> str:
    """An invocation's log as Lambda frames it: START (with the version that ran), the
    output, the error with its trace, END and REPORT."""
    request_id = call.request_id
    report = report or _report_line(request_id, call.spec.memory_mb, outcome)
    return (
        f"START RequestId: {request_id} Version: {call.version}\n{outcome.logs}"
        f"{_failure(outcome.error)}END RequestId: {request_id}\n{report}\n"
    )


def _sync_record(
    function: str, version: str, request_id: str, started: float, outcome: Outcome
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
