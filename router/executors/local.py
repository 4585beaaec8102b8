"""Handlers run inside the router's own process: `async def` on the event loop, plain
functions on a thread pool so they never block the loop (a blocked loop stops AMQP heartbeats).

A thread cannot be killed: on timeout the invocation ends `timed_out` at once and the thread is
left to finish in the background. Worker processes (`isolation: process`) lift that limit.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from router import capture, loader
from router.context import LambdaContext
from router.deadlines import Deadlines
from router.executors import Call, ErrorInfo, Outcome, Status


class LocalExecutor:
    def __init__(self, thread_workers: int) -> None:
        self._threads = ThreadPoolExecutor(thread_workers, thread_name_prefix="handler")
        self._handlers: dict[tuple[str, str, int], loader.Handler] = {}
        self._deadlines = Deadlines()
        capture.install()

    async def run(self, call: Call) -> Outcome:
        started = time.perf_counter()
        try:
            handler = self._handler(call)
        except loader.HandlerError as exc:
            return Outcome("failed", _elapsed_ms(started), error=ErrorInfo(exc.kind, str(exc)))
        spec = call.spec
        context = LambdaContext.create(
            call.function,
            call.version,
            spec.memory_mb,
            call.request_id,
            spec.timeout_s,
            qualifier=call.qualifier,
        )
        output, token = capture.begin(call.request_id)
        try:
            status, result, error = await self._outcome(handler, call, context)
        finally:
            capture.end(token)
        return Outcome(
            status, _elapsed_ms(started), result=result, error=error, logs=capture.text(output)
        )

    async def _outcome(
        self, handler: loader.Handler, call: Call, context: LambdaContext
    ) -> tuple[Status, Any, ErrorInfo | None]:
        timeout_s = call.spec.timeout_s
        task = self._deadlines.start(timeout_s)
        try:
            result = await self._start(handler, call.event, context)
        except asyncio.CancelledError:
            if not self._deadlines.stop(task):
                raise  # not ours: the router is shutting down
            message = f"Task timed out after {timeout_s:.2f} seconds"
            return "timed_out", None, ErrorInfo("TimeoutError", message)
        except Exception as exc:
            self._deadlines.stop(task)
            return "failed", None, ErrorInfo.from_exception(exc)
        self._deadlines.stop(task)  # a handler that swallowed the cancellation keeps its result
        return _marshalled(result)

    def _handler(self, call: Call) -> loader.Handler:
        """The function version's handler. A change of it loads its module afresh, so a code
        change is picked up by the next call, as process environments pick it up (published
        versions keep theirs, so two versions alternating do not reload each other's)."""
        key = (call.function, call.version, call.spec.version)
        handler = self._handlers.get(key)
        if handler is None:
            stale = [k for k in self._handlers if k[:2] == key[:2]]
            for old in stale:
                del self._handlers[old]
            handler = self._handlers[key] = loader.load(call.spec.handler, fresh=bool(stale))
        return handler

    def _start(self, handler: loader.Handler, event: Any, context: LambdaContext) -> Any:
        if loader.is_async(handler):
            return handler(event, context)
        # The thread runs in a copy of this context, so its output reaches this capture.
        run = contextvars.copy_context().run
        return asyncio.get_running_loop().run_in_executor(
            self._threads, run, handler, event, context
        )

    async def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _marshalled(result: Any) -> tuple[Status, Any, ErrorInfo | None]:
    """Results must be JSON, as Lambda's are; anything else fails like Lambda's MarshalError."""
    try:
        orjson.dumps(result)
    except TypeError as exc:
        error = ErrorInfo("Runtime.MarshalError", f"Unable to marshal response: {exc}")
        return "failed", None, error
    return "succeeded", result, None
