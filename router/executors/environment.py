"""An execution environment seen from the router: a supervised process that runs one call at a
time, whatever runs inside it (the Python worker, or any runtime speaking the Runtime API).

What every kind shares lives here: the call's timeout and memory watchdog (one timer), the
output pipe read as it comes (so what a handler printed before a timeout or a crash is kept),
and the end of the environment with its whole process tree (its cell). A kind says only how
a call is sent and how its answer becomes an Outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import time
from typing import Any, Generic, TypeVar

from router.executors import Call, ErrorInfo, Outcome
from router.executors.cells import Cell, Cells

PAGE = resource.getpagesize()
WATCH_S = 0.05
KILL_GRACE_S = 0.5
STOP_GRACE_S = 1.0
READ_SIZE = 64 * 1024
MAX_OUTPUT = 64 * 1024  # per invocation, as captured in the router for thread handlers
A = TypeVar("A")


class InitError(Exception):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class MemoryLimit(Exception):
    pass


class Exits(asyncio.SubprocessProtocol):
    """The environment's process, as asyncio reports it: when it exits."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class Output:
    """The environment's stdout and stderr: one pipe, read as it comes. Whatever arrived by
    the end of a call (including what came before it: init, or late lines of the last call)
    is that call's output; reading once more at the answer picks up what the process wrote
    just before answering."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._loop = loop
        self._chunks: list[bytes] = []
        self._size = 0
        self._dropped = 0
        self._open = True
        loop.add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            while chunk := os.read(self._fd, READ_SIZE):
                self._keep(chunk)
                if len(chunk) < READ_SIZE:
                    return
        except BlockingIOError:
            return
        except OSError:
            pass
        self.close()  # end of file: every writer is gone

    def _keep(self, chunk: bytes) -> None:
        room = MAX_OUTPUT - self._size
        if room <= 0:
            self._dropped += len(chunk)
            return
        self._chunks.append(chunk[:room])
        self._size += min(room, len(chunk))
        self._dropped += max(0, len(chunk) - room)

    def take(self) -> str:
        if self._open:
            self._read()
        if not self._chunks:
            return ""
        text = b"".join(self._chunks).decode("utf-8", "replace")
        if self._dropped:
            text += f"\n[output cut: {self._dropped} more bytes]\n"
        self._chunks, self._size, self._dropped = [], 0, 0
        return text

    def close(self) -> None:
        if self._open:
            self._open = False
            self._loop.remove_reader(self._fd)
            os.close(self._fd)


class Environment(Generic[A]):
    """One process environment. `A` is what a call's answer is before it becomes an Outcome."""

    kind = "process"

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        exits: Exits,
        output: Output,
        cell: Cell,
        cells: Cells,
        version: int,
    ) -> None:
        self._transport = transport
        self._exits = exits
        self.output = output
        self._cell = cell
        self._cells = cells
        self._loop = asyncio.get_running_loop()
        self._watchdog: asyncio.TimerHandle | None = None
        self.pid: int = transport.get_pid()
        self.version = version
        self.init_ms = 0.0
        self.invocations = 0
        self.idle_since = time.monotonic()
        self.peak_mb = 0.0
        self._alive = True
        self._ended = False

    @property
    def alive(self) -> bool:
        """Usable for another call: not stopped or killed, and its process has not died."""
        return self._alive and not self._exits.exited.done()

    async def invoke(self, call: Call) -> Outcome:
        """Run one call under its timeout and memory limit."""
        started = time.perf_counter()
        timeout_s = call.spec.timeout_s
        memory_mb = call.spec.memory_mb
        self.invocations += 1
        try:
            answer = await self._watched(self._send(call, timeout_s), timeout_s, memory_mb)
        except TimeoutError:
            await self.kill()
            message = f"Task timed out after {timeout_s:.2f} seconds"
            return self._failure("timed_out", started, ErrorInfo("TimeoutError", message))
        except MemoryLimit as exc:
            await self.kill()
            return self._failure("failed", started, ErrorInfo("out_of_memory", str(exc)))
        except ConnectionError:
            return self._failure("failed", started, await self._lost())
        except asyncio.CancelledError:
            self._alive = False  # still running the call: its late answer must answer no other
            raise
        finally:
            self.idle_since = time.monotonic()
        return self._outcome(answer, _since(started))

    def _send(self, call: Call, timeout_s: float) -> asyncio.Future[A]:
        raise NotImplementedError

    def _outcome(self, answer: A, duration_ms: float) -> Outcome:
        raise NotImplementedError

    def _failure(self, status: Any, started: float, error: ErrorInfo) -> Outcome:
        return Outcome(
            status,
            _since(started),
            error=error,
            logs=self.output.take(),
            max_memory_mb=self.peak_mb,
        )

    async def _watched(self, answer: asyncio.Future[A], timeout_s: float, memory_mb: int) -> A:
        """Wait for the answer under one timer, which fails it at the deadline or when resident
        memory is over the limit, checked every WATCH_S."""
        deadline = self._loop.time() + timeout_s
        self._watchdog = self._loop.call_at(
            min(self._loop.time() + WATCH_S, deadline), self._watch, answer, deadline, memory_mb
        )
        try:
            return await answer
        finally:
            self._watchdog.cancel()

    def _watch(self, answer: asyncio.Future[A], deadline: float, memory_mb: int) -> None:
        if answer.done():
            return
        now = self._loop.time()
        resident = self.resident_mb()
        self.peak_mb = max(self.peak_mb, resident)
        if now >= deadline:
            answer.set_exception(TimeoutError())
        elif resident > memory_mb:
            limit = f"the function exceeded its memory limit of {memory_mb} MB"
            answer.set_exception(MemoryLimit(limit))
        else:
            self._watchdog = self._loop.call_at(
                min(now + WATCH_S, deadline), self._watch, answer, deadline, memory_mb
            )

    def resident_mb(self) -> float:
        """Resident memory of the environment's processes together."""
        pages = 0
        for pid in self._cell.processes(self.pid):
            with (
                contextlib.suppress(OSError, IndexError, ValueError),
                open(f"/proc/{pid}/statm") as statm,
            ):
                pages += int(statm.read().split()[1])
        return pages * PAGE / (1024 * 1024)

    async def _lost(self) -> ErrorInfo:
        """The process died mid-call (or is about to)."""
        self._alive = False
        try:
            code = await asyncio.wait_for(self._exit_code(), KILL_GRACE_S)
        except TimeoutError:
            await self.kill()
            code = await self._exit_code()
        broken = self._broken_protocol()
        if broken:
            return ErrorInfo(
                "worker_lost", f"the execution environment broke its protocol: {broken}"
            )
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return ErrorInfo("worker_lost", f"the execution environment died ({how})")

    def _broken_protocol(self) -> str:
        """Why the router cut the environment off, if it did (a reply it could not take)."""
        return ""

    async def _exit_code(self) -> int:
        await asyncio.shield(self._exits.exited)
        code = self._transport.get_returncode()
        return 0 if code is None else code

    async def stop(self) -> None:
        """Ask the process to finish, then kill what is left: used when scaling down."""
        self._alive = False
        self._ask_to_stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exit_code(), STOP_GRACE_S)
        await self.kill()

    def _ask_to_stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    async def kill(self) -> None:
        """End the environment: every process of it at once, then what it leaves behind."""
        self._alive = False
        if self._ended:
            return
        self._ended = True
        self._cell.kill(self.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._exits.exited), KILL_GRACE_S)
        self._cells.release(self._cell, self.pid)
        self.output.close()
        self._transport.close()


AnyEnvironment = Environment[Any]


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
