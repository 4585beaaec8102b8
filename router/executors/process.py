"""A process execution environment, seen from the router: start it, run calls, kill it.

Each environment is a supervised child of its own (no shared executor whose one broken worker
fails the rest). A call that overruns its timeout or memory gets the process killed (TERM,
then KILL) and the invocation reported; a process that dies mid-call fails only that call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

from router.executors import Call, ErrorInfo, Outcome

HEADER = struct.Struct(">I")
PAGE = resource.getpagesize()
WATCH_S = 0.05
KILL_GRACE_S = 0.2
INIT_TIMEOUT_S = 30.0


class InitError(Exception):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class Worker:
    def __init__(self, process: asyncio.subprocess.Process, version: int) -> None:
        self.process = process
        self.version = version
        self.init_ms = 0.0
        self.invocations = 0
        self.idle_since = time.monotonic()
        self.alive = True

    @classmethod
    async def start(
        cls, function: str, version: int, spec_fields: Mapping[str, Any], env: Mapping[str, str]
    ) -> Worker:
        """Spawn the process and import the handler; raises InitError if that fails.

        The init duration runs from spawn to ready: interpreter start-up plus the handler's
        import, as Lambda's Init Duration covers runtime and function init.
        """
        spawned = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "router.executors.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
        worker = cls(process, version)
        init = {"function": function, "version": version, **spec_fields}
        try:
            await worker._send(init)
            reply = await asyncio.wait_for(worker._receive(), INIT_TIMEOUT_S)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
            await worker.kill()
            message = f"environment failed to start: {exc!r}"
            raise InitError(ErrorInfo("Runtime.InitError", message)) from exc
        if "init_error" in reply:
            await worker.kill()
            raise InitError(_error(reply["init_error"]))
        worker.init_ms = _since(spawned)
        return worker

    @property
    def pid(self) -> int:
        return self.process.pid

    async def invoke(self, call: Call, memory_mb: int) -> tuple[Outcome, float]:
        """Run one call; returns the outcome and the environment's max memory used (MB)."""
        started = time.perf_counter()
        deadline_ms = int(time.time() * 1000 + call.spec.timeout_s * 1000)
        self.invocations += 1
        try:
            await self._send(
                {"request_id": call.request_id, "event": call.event, "deadline_ms": deadline_ms}
            )
            reply = await self._watched(call.spec.timeout_s, memory_mb)
        except TimeoutError:
            await self.kill()
            message = f"Task timed out after {call.spec.timeout_s:.2f} seconds"
            return Outcome(
                "timed_out", _since(started), error=ErrorInfo("TimeoutError", message)
            ), 0
        except MemoryLimit as exc:
            await self.kill()
            return Outcome("failed", _since(started), error=ErrorInfo("out_of_memory", str(exc))), 0
        except (ConnectionError, asyncio.IncompleteReadError):
            return Outcome("failed", _since(started), error=await self._lost()), 0
        finally:
            self.idle_since = time.monotonic()
        if reply.get("fatal"):
            await self.kill()
        return _outcome(reply), float(reply.get("max_memory_mb", 0))

    async def _watched(self, timeout_s: float, memory_mb: int) -> dict[str, Any]:
        """Wait for the reply, checking resident memory as a second line behind RLIMIT_AS."""
        receive = asyncio.ensure_future(self._receive())
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                done, _ = await asyncio.wait({receive}, timeout=min(WATCH_S, remaining))
                if done:
                    return receive.result()
                if self.resident_mb() > memory_mb:
                    raise MemoryLimit(f"the function exceeded its memory limit of {memory_mb} MB")
        finally:
            if not receive.done():
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receive

    def resident_mb(self) -> float:
        try:
            with open(f"/proc/{self.pid}/statm") as statm:
                return int(statm.read().split()[1]) * PAGE / (1024 * 1024)
        except (OSError, IndexError, ValueError):
            return 0.0

    async def _lost(self) -> ErrorInfo:
        self.alive = False
        code = await self.process.wait()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return ErrorInfo("worker_lost", f"the execution environment died ({how})")

    async def _send(self, document: Any) -> None:
        stdin = self.process.stdin
        if stdin is None:
            raise ConnectionError("no pipe to the environment")
        body = orjson.dumps(document)
        stdin.write(HEADER.pack(len(body)) + body)
        await stdin.drain()

    async def _receive(self) -> dict[str, Any]:
        stdout = self.process.stdout
        if stdout is None:
            raise ConnectionError("no pipe from the environment")
        header = await stdout.readexactly(HEADER.size)
        reply: dict[str, Any] = orjson.loads(await stdout.readexactly(HEADER.unpack(header)[0]))
        return reply

    async def stop(self) -> None:
        """Ask politely (close its input), then kill: used when scaling down."""
        self.alive = False
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 1.0)
        except TimeoutError:
            await self.kill()

    async def kill(self) -> None:
        self.alive = False
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), KILL_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            await self.process.wait()


class MemoryLimit(Exception):
    pass


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
