"""A process execution environment, seen from the router: start it, run calls, kill it.

Each environment is a supervised child of its own (no shared executor whose one broken worker
fails the rest). A call that overruns its timeout or memory gets the process killed (TERM,
then KILL) and the invocation reported; a process that dies mid-call fails only that call.

The router's event loop is the scarce resource, so a call costs it one frame written, one
future and one timer: replies are parsed by a protocol as they arrive (no reader task, no
stream), and the timer doubles as the timeout and the memory watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any, cast

import orjson

from router.executors import Call, ErrorInfo, Outcome
from router.executors.worker import HEADER, frame_end, pack, unpack

PAGE = resource.getpagesize()
WATCH_S = 0.05
KILL_GRACE_S = 0.2
STOP_GRACE_S = 1.0
EXIT_GRACE_S = 0.1
INIT_TIMEOUT_S = 30.0


class InitError(Exception):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class MemoryLimit(Exception):
    pass


class _Pipes(asyncio.SubprocessProtocol):
    """The environment's end of the protocol: frames from its stdout, each the answer to the
    one request in flight (an environment runs one call at a time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buffer = bytearray()
        self._reply: asyncio.Future[dict[str, Any]] | None = None
        self.lost = False
        self.exited: asyncio.Future[None] = loop.create_future()

    def expect(self) -> asyncio.Future[dict[str, Any]]:
        """The future of the next reply; fails with ConnectionError if the process is gone."""
        reply: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        if self.lost:
            reply.set_exception(ConnectionError("the environment's pipe is closed"))
        else:
            self._reply = reply
        return reply

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if not self._buffer and frame_end(data) == len(data):  # the usual case: no copy
            self._deliver(orjson.loads(memoryview(data)[HEADER.size :]))
            return
        self._buffer += data
        self._drain_buffer()

    def _drain_buffer(self) -> None:
        while (end := frame_end(self._buffer)) is not None:
            self._deliver(unpack(self._buffer, end))

    def _deliver(self, document: dict[str, Any]) -> None:
        # A reply nobody waits for (its call timed out and the process is being killed) is dropped.
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            reply.set_result(document)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:  # after every byte the process wrote was read
            self._lose()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        if not self.lost:
            # Its last reply may still be in the pipe, read after this: the pipe's closing
            # fails the call. Unless a process it forked holds the pipe open; then this does.
            self._loop.call_later(EXIT_GRACE_S, self._lose)

    def _lose(self) -> None:
        self.lost = True
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            reply.set_exception(ConnectionError("the environment closed its pipe"))


class Worker:
    def __init__(self, transport: asyncio.SubprocessTransport, pipes: _Pipes, version: int) -> None:
        self._transport = transport
        self._pipes = pipes
        # Asked for with stdin=PIPE, so it exists (uvloop's is no asyncio.WriteTransport subclass).
        self._stdin = cast(asyncio.WriteTransport, transport.get_pipe_transport(0))
        self._loop = asyncio.get_running_loop()
        self._watchdog: asyncio.TimerHandle | None = None
        self.pid: int = transport.get_pid()
        self.version = version
        self.init_ms = 0.0
        self.invocations = 0
        self.idle_since = time.monotonic()
        self._alive = True

    @property
    def alive(self) -> bool:
        """Usable for another call: not stopped or killed, and its process has not died."""
        return self._alive and not self._pipes.lost

    @classmethod
    async def start(
        cls, function: str, version: int, spec_fields: Mapping[str, Any], env: Mapping[str, str]
    ) -> Worker:
        """Spawn the process and import the handler; raises InitError if that fails.

        The init duration runs from spawn to ready: interpreter start-up plus the handler's
        import, as Lambda's Init Duration covers runtime and function init.
        """
        spawned = time.perf_counter()
        loop = asyncio.get_running_loop()
        transport, pipes = await loop.subprocess_exec(
            lambda: _Pipes(loop),
            sys.executable,
            "-m",
            "router.executors.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,
            env=dict(env),
            start_new_session=True,
        )
        worker = cls(transport, pipes, version)
        init = {"function": function, "version": version, **spec_fields}
        try:
            reply = await asyncio.wait_for(worker._request(init), INIT_TIMEOUT_S)
        except (TimeoutError, ConnectionError) as exc:
            await worker.kill()
            message = f"environment failed to start: {exc!r}"
            raise InitError(ErrorInfo("Runtime.InitError", message)) from exc
        if "init_error" in reply:
            await worker.kill()
            raise InitError(_error(reply["init_error"]))
        worker.init_ms = _since(spawned)
        return worker

    async def invoke(self, call: Call, memory_mb: int) -> tuple[Outcome, float]:
        """Run one call; returns the outcome and the environment's max memory used (MB)."""
        started = time.perf_counter()
        timeout_s = call.spec.timeout_s
        deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
        self.invocations += 1
        request = {"request_id": call.request_id, "event": call.event, "deadline_ms": deadline_ms}
        try:
            reply = await self._watched(self._request(request), timeout_s, memory_mb)
        except TimeoutError:
            await self.kill()
            message = f"Task timed out after {timeout_s:.2f} seconds"
            error = ErrorInfo("TimeoutError", message)
            return Outcome("timed_out", _since(started), error=error), 0
        except MemoryLimit as exc:
            await self.kill()
            return Outcome("failed", _since(started), error=ErrorInfo("out_of_memory", str(exc))), 0
        except ConnectionError:
            return Outcome("failed", _since(started), error=await self._lost()), 0
        except asyncio.CancelledError:
            self._alive = False  # still running the call: its late reply must answer no other
            raise
        finally:
            self.idle_since = time.monotonic()
        if reply.get("fatal"):
            await self.kill()
        return _outcome(reply), float(reply.get("max_memory_mb", 0))

    def _request(self, document: Any) -> asyncio.Future[dict[str, Any]]:
        """Send one frame; the future of its reply."""
        reply = self._pipes.expect()
        if not reply.done():
            self._stdin.write(pack(document))
        return reply

    async def _watched(
        self, reply: asyncio.Future[dict[str, Any]], timeout_s: float, memory_mb: int
    ) -> dict[str, Any]:
        """Wait for the reply under one timer, which fails it at the deadline or when resident
        memory is over the limit (a second line behind RLIMIT_AS), checked every WATCH_S."""
        deadline = self._loop.time() + timeout_s
        self._watchdog = self._loop.call_at(
            min(self._loop.time() + WATCH_S, deadline), self._watch, reply, deadline, memory_mb
        )
        try:
            return await reply
        finally:
            self._watchdog.cancel()

    def _watch(
        self, reply: asyncio.Future[dict[str, Any]], deadline: float, memory_mb: int
    ) -> None:
        if reply.done():
            return
        now = self._loop.time()
        if now >= deadline:
            reply.set_exception(TimeoutError())
        elif self.resident_mb() > memory_mb:
            limit = f"the function exceeded its memory limit of {memory_mb} MB"
            reply.set_exception(MemoryLimit(limit))
        else:
            self._watchdog = self._loop.call_at(
                min(now + WATCH_S, deadline), self._watch, reply, deadline, memory_mb
            )

    def resident_mb(self) -> float:
        try:
            with open(f"/proc/{self.pid}/statm") as statm:
                return int(statm.read().split()[1]) * PAGE / (1024 * 1024)
        except (OSError, IndexError, ValueError):
            return 0.0

    async def _lost(self) -> ErrorInfo:
        """The process closed its pipe mid-call: it died, or is about to (or is killed)."""
        self._alive = False
        try:
            code = await asyncio.wait_for(self._exit_code(), KILL_GRACE_S)
        except TimeoutError:
            await self.kill()
            code = await self._exit_code()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return ErrorInfo("worker_lost", f"the execution environment died ({how})")

    async def _exit_code(self) -> int:
        await asyncio.shield(self._pipes.exited)
        self._transport.close()
        code = self._transport.get_returncode()
        return 0 if code is None else code

    async def stop(self) -> None:
        """Ask politely (close its input), then kill: used when scaling down."""
        self._alive = False
        self._stdin.close()
        try:
            await asyncio.wait_for(self._exit_code(), STOP_GRACE_S)
        except TimeoutError:
            await self.kill()

    async def kill(self) -> None:
        """TERM the environment's process group (what its handler started too), KILL if it
        lingers."""
        self._alive = False
        if self._pipes.exited.done():
            self._transport.close()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self._exit_code(), KILL_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            await self._exit_code()


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _error(raw: Mapping[str, Any]) -> ErrorInfo:
    after = raw.get("retry_after_s")
    return ErrorInfo(
        str(raw.get("type")),
        str(raw.get("message")),
        list(raw.get("trace", [])),
        permanent=bool(raw.get("permanent")),
        retry_after_s=None if after is None else float(after),
    )


def _outcome(reply: Mapping[str, Any]) -> Outcome:
    duration = float(reply.get("duration_ms", 0))
    logs = str(reply.get("logs", ""))
    if reply.get("status") == "succeeded":
        return Outcome("succeeded", duration, result=reply.get("result"), logs=logs)
    return Outcome("failed", duration, error=_error(reply.get("error") or {}), logs=logs)
