"""The Python worker environment: `python -m router.executors.worker`, the fast path for Python
handlers, on the router's own path or from an uploaded `python3.x` bundle.

A call costs the router's event loop one frame written, one future and one timer: replies are
parsed by a protocol as they arrive (no reader task, no stream). Requests go down the child's
stdin and replies come up its stdout; what the handler prints goes to its stderr, which is the
environment's output pipe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, cast

import orjson

from router.executors import Call, ErrorInfo, Outcome
from router.executors.environment import Environment, Exits, InitError
from router.executors.worker import HEADER, declared_size, frame_end, pack, unpack

EXIT_GRACE_S = 0.1
# The largest reply a worker may send: a 6 MB result, JSON-escaped, and its log of the call.
MAX_FRAME_BYTES = 16 * 1024 * 1024
INIT_TIMEOUT_S = 30.0


class _Pipes(Exits):
    """The worker's replies: frames from its stdout, each the answer to the one request in
    flight (an environment runs one call at a time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._buffer = bytearray()
        self._reply: asyncio.Future[dict[str, Any]] | None = None
        self.lost = False
        self.violation = ""  # why the process was cut off, if it broke the protocol

    def expect(self) -> asyncio.Future[dict[str, Any]]:
        """The future of the next reply; fails with ConnectionError if the process is gone."""
        reply: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        if self.lost:
            reply.set_exception(ConnectionError("the environment's pipe is closed"))
        else:
            self._reply = reply
        return reply

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        """Replies are data from a process running someone's code: a frame too large to be a
        reply, or one that is not a JSON object, ends the environment (the call fails as
        `worker_lost`), never the router."""
        if self.lost:
            return
        try:
            if not self._buffer and frame_end(data) == len(data):  # the usual case: no copy
                self._deliver(orjson.loads(memoryview(data)[HEADER.size :]))
                return
            self._buffer += data
            if declared_size(self._buffer) > MAX_FRAME_BYTES:
                raise ValueError("a reply frame over the size limit")
            while (end := frame_end(self._buffer)) is not None:
                self._deliver(unpack(self._buffer, end))
        except (ValueError, TypeError) as exc:
            self.violation = str(exc)
            self._buffer.clear()
            self._lose()

    def _deliver(self, document: Any) -> None:
        if not isinstance(document, dict):
            raise TypeError("a reply that is not a JSON object")
        # A reply nobody waits for (its call timed out and the process is being killed) is dropped.
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            reply.set_result(document)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:  # after every byte the process wrote was read
            self._lose()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.lost:
            # Its last reply may still be in the pipe, read after this: the pipe's closing
            # fails the call. Unless a process it forked holds the pipe open; then this does.
            self._loop.call_later(EXIT_GRACE_S, self._lose)

    def _lose(self) -> None:
        self.lost = True
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            reply.set_exception(ConnectionError("the environment closed its pipe"))


class PythonWorker(Environment[dict[str, Any]]):
    kind = "python"

    @property
    def _pipes(self) -> _Pipes:
        return cast(_Pipes, self._exits)

    @property
    def alive(self) -> bool:
        return super().alive and not self._pipes.lost

    async def initialise(self, init: Mapping[str, Any]) -> None:
        """Send the init frame (handler, limits, confinement); raises InitError if the handler
        cannot be loaded. Init Duration runs from spawn to ready, as Lambda's covers runtime and
        function init."""
        try:
            reply = await asyncio.wait_for(self._request(init), INIT_TIMEOUT_S)
        except (TimeoutError, ConnectionError) as exc:
            logs = self.output.take()
            await self.kill()
            message = f"environment failed to start: {exc!r}"
            raise InitError(ErrorInfo("Runtime.InitError", f"{message}\n{logs}".strip())) from exc
        if "init_error" in reply:
            await self.kill()
            raise InitError(_error(reply["init_error"]))

    def _send(self, call: Call, timeout_s: float) -> asyncio.Future[dict[str, Any]]:
        deadline_ms = _deadline_ms(timeout_s)
        request = {"request_id": call.request_id, "event": call.event, "deadline_ms": deadline_ms}
        if call.qualifier is not None:
            request["qualifier"] = call.qualifier  # the invoked ARN names it
        return self._request(request)

    def _request(self, document: Any) -> asyncio.Future[dict[str, Any]]:
        """Send one frame; the future of its reply."""
        reply = self._pipes.expect()
        if not reply.done():
            stdin = cast(asyncio.WriteTransport, self._transport.get_pipe_transport(0))
            stdin.write(pack(document))
        return reply

    def _outcome(self, answer: dict[str, Any], duration_ms: float) -> Outcome:
        if answer.get("fatal"):
            self._alive = False  # out of memory: the process is ending itself
        memory = float(answer.get("max_memory_mb", 0))
        logs = self.output.take()
        if answer.get("status") == "succeeded":
            return Outcome(
                "succeeded",
                duration_ms,
                result=answer.get("result"),
                logs=logs,
                max_memory_mb=memory,
            )
        error = _error(answer.get("error") or {})
        return Outcome("failed", duration_ms, error=error, logs=logs, max_memory_mb=memory)

    def _broken_protocol(self) -> str:
        return self._pipes.violation

    def _ask_to_stop(self) -> None:
        stdin = self._transport.get_pipe_transport(0)
        if stdin is not None:
            stdin.close()  # end of input: the worker returns


def _deadline_ms(timeout_s: float) -> int:
    return int(time.time() * 1000 + timeout_s * 1000)


def _error(raw: Mapping[str, Any]) -> ErrorInfo:
    after = raw.get("retry_after_s")
    return ErrorInfo(
        str(raw.get("type")),
        str(raw.get("message")),
        list(raw.get("trace", [])),
        permanent=bool(raw.get("permanent")),
        retry_after_s=None if after is None else float(after),
    )
