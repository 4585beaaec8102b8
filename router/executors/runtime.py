"""A Runtime API environment: any program that speaks the Lambda Runtime API (a `provided`
bundle's `bootstrap`, the Node.js runtime client, AWS's own runtime interface clients).

The program asks for events at its own endpoint (`RuntimeApi`) and posts each answer there; a
call hands the event over and waits for that answer under the same timeout and memory watch
as the Python worker. Its init is over when it first asks for an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from router.executors import Call, ErrorInfo, Outcome
from router.executors.cells import Cell, Cells
from router.executors.environment import Environment, Exits, InitError, Output
from router.runtimeapi import Answer, InitFailed, Invocation, RuntimeApi

INIT_TIMEOUT_S = 10.0  # Lambda's init phase limit
SAMPLE_S = 1.0  # reading the environment's memory costs ~0.1 ms: at most once a second


class RuntimeProcess(Environment[Answer]):
    kind = "runtime"

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        exits: Exits,
        output: Output,
        cell: Cell,
        cells: Cells,
        version: int,
        api: RuntimeApi,
        function_arn: str,
    ) -> None:
        super().__init__(transport, exits, output, cell, cells, version)
        self._api = api
        self._arn = function_arn
        self._pending: asyncio.Future[Answer] | None = None
        self._sampled = -SAMPLE_S
        exits.exited.add_done_callback(self._exited)

    @classmethod
    async def start(
        cls,
        argv: list[str],
        env: Mapping[str, str],
        cwd: Path,
        cell: Cell,
        cells: Cells,
        version: int,
        function_arn: str,
    ) -> RuntimeProcess:
        """Start the program with its endpoint and wait until it asks for its first event."""
        spawned = time.perf_counter()
        api = RuntimeApi(cell.uid)
        address = await api.start()
        loop = asyncio.get_running_loop()
        read, write = os.pipe()
        try:
            transport, exits = await loop.subprocess_exec(
                lambda: Exits(loop),
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write,
                stderr=write,
                env={**env, "AWS_LAMBDA_RUNTIME_API": address},
                cwd=str(cwd),
                start_new_session=True,
            )
        except BaseException:
            os.close(read)
            await api.close()
            raise
        finally:
            os.close(write)
        environment = cls(
            transport, exits, Output(read, loop), cell, cells, version, api, function_arn
        )
        await environment._initialised()
        environment.init_ms = (time.perf_counter() - spawned) * 1000
        return environment

    async def _initialised(self) -> None:
        """Wait for the first GET /next; an init error, an exit or the init timeout fail."""
        waits = {asyncio.ensure_future(asyncio.shield(self._api.ready)), self._exits.exited}
        done, _ = await asyncio.wait(
            waits, timeout=INIT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if self._api.ready.done() and not self._api.ready.cancelled():
            failure = self._api.ready.exception()
            if failure is None:
                return
            error = _error(failure.answer) if isinstance(failure, InitFailed) else None
        elif not done:
            error = ErrorInfo("Runtime.InitTimeout", f"init took longer than {INIT_TIMEOUT_S} s")
        else:
            code = self._transport.get_returncode()
            error = ErrorInfo("Runtime.ExitError", f"Runtime exited with error: exit status {code}")
        await self._fail_init(error or ErrorInfo("Runtime.InitError", "init failed"))

    async def _fail_init(self, error: ErrorInfo) -> None:
        await asyncio.sleep(0.05)  # let the last words of a dying runtime arrive
        logs = self.output.take()
        await self.kill()
        message = f"{error.message}\n{logs}".rstrip() if logs else error.message
        raise InitError(ErrorInfo(error.type, message, error.trace))

    def _send(self, call: Call, timeout_s: float) -> asyncio.Future[Answer]:
        answer: asyncio.Future[Answer] = self._loop.create_future()
        if self._exits.exited.done():
            answer.set_exception(ConnectionError("the runtime has exited"))
            return answer
        self._pending = answer
        self._api.submit(
            Invocation(
                request_id=call.request_id,
                body=orjson.dumps(call.event),
                deadline_ms=int(time.time() * 1000 + timeout_s * 1000),
                function_arn=f"{self._arn}:{call.qualifier}" if call.qualifier else self._arn,
                trace_id=_trace_id(),
                answer=answer,
                client_context=call.client_context,
            )
        )
        return answer

    def _exited(self, _: asyncio.Future[None]) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.set_exception(ConnectionError("the runtime exited mid-invocation"))

    def _outcome(self, answer: Answer, duration_ms: float) -> Outcome:
        self._pending = None
        now = self._loop.time()
        if now - self._sampled >= SAMPLE_S:  # the watchdog samples long calls; short ones here
            self._sampled = now
            self.peak_mb = max(self.peak_mb, self.resident_mb())
        logs = self.output.take()
        if answer.failed:
            error = _error(answer)
            return Outcome(
                "failed", duration_ms, error=error, logs=logs, max_memory_mb=self.peak_mb
            )
        return Outcome(
            "succeeded",
            duration_ms,
            result=_result(answer.body),
            logs=logs,
            max_memory_mb=self.peak_mb,
        )

    def _ask_to_stop(self) -> None:
        self._api.stop()  # its waiting GET /next answers 500: AWS's clients exit on that
        super()._ask_to_stop()

    async def kill(self) -> None:
        await super().kill()
        await self._api.close()


def _result(body: bytes) -> Any:
    """A response is JSON as a rule; anything else (a bash bootstrap's text) is a string."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


def _error(answer: Answer) -> ErrorInfo:
    document: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        document = orjson.loads(answer.body) if answer.body else None
    if not isinstance(document, dict):
        text = answer.body.decode("utf-8", "replace")
        return ErrorInfo(answer.error_type or "Runtime.Unknown", text)
    trace = document.get("stackTrace", document.get("trace")) or []
    lines = [str(line) for line in trace] if isinstance(trace, list) else [str(trace)]
    kind = document.get("errorType") or answer.error_type or "Runtime.Unknown"
    return ErrorInfo(str(kind), str(document.get("errorMessage", "")), lines)


def _trace_id() -> str:
    """An X-Ray trace header, as Lambda passes one to every invocation."""
    random = os.urandom(20).hex()
    return f"Root=1-{int(time.time()):08x}-{random[:24]};Parent={random[24:]};Sampled=0"
