"""The execution environment's own process: `python -m router.executors.worker`.

It confines itself (see sandbox.py), imports the handler once (its init), then runs one
invocation at a time for as long as the router keeps it. Frames on the protocol are a 4-byte
big-endian length and a JSON document; the protocol owns the process's original stdin and
stdout. What the handler prints or logs goes to stderr, the environment's output pipe, which
the router reads as it comes: nothing a handler writes can corrupt the protocol, and what it
wrote before a crash or a timeout is not lost with it.

Kept to the standard library and orjson so a cold start stays cheap (and runs without orjson
on another interpreter than the router's, for a `python3.x` runtime).
"""

from __future__ import annotations

import os
import resource
import struct
import sys
import time
import traceback
from typing import Any

from router.context import LambdaContext
from router.errors import steering
from router.loader import HandlerError, is_async, load

try:
    import orjson

    dumps, loads = orjson.dumps, orjson.loads
except ImportError:  # another interpreter than the router's, without orjson
    import json

    orjson = None  # type: ignore[assignment]
    loads = json.loads  # type: ignore[assignment]

    def dumps(value: Any) -> bytes:  # type: ignore[misc]
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


HEADER = struct.Struct(">I")
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # Lambda's invocation response limit
MB = 1024 * 1024
READ_SIZE = 64 * 1024  # a pipe's capacity
STATUS_SIZE = 16 * 1024  # /proc/self/status is under 2 kB


class Frames:
    """Frames read from a pipe: one read usually brings a whole request, header and body."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()

    def read(self) -> Any:
        """The next document; None at the end of the input."""
        while (end := frame_end(self._buffer)) is None:
            chunk = os.read(self._fd, READ_SIZE)
            if not chunk:
                return None
            self._buffer += chunk
        return unpack(self._buffer, end)


def frame_end(data: bytes | bytearray) -> int | None:
    """Where the first frame in `data` ends; None while part of it has still to arrive.
    (How both ends read: the environment from its stdin, the router from its stdout.)"""
    if len(data) < HEADER.size:
        return None
    end = HEADER.size + HEADER.unpack_from(data)[0]
    return end if len(data) >= end else None


def declared_size(data: bytes | bytearray) -> int:
    """The size the first frame in `data` says it has (0 before its header has arrived)."""
    return int(HEADER.unpack_from(data)[0]) if len(data) >= HEADER.size else 0


def unpack(buffer: bytearray, end: int) -> Any:
    """The first frame's document, taken out of the buffer."""
    document = loads(bytes(buffer[HEADER.size : end]))
    del buffer[:end]
    return document


def pack(document: Any) -> bytes:
    """One frame: the JSON body after its length (also how the router writes requests)."""
    body = dumps(document)
    return HEADER.pack(len(body)) + body


def write_frame(fd: int, document: Any) -> None:
    frame = memoryview(pack(document))
    while frame:  # one write unless the frame is over a pipe's capacity (or a signal came)
        frame = frame[os.write(fd, frame) :]


def error(kind: str, message: str, trace: list[str] | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "trace": trace or []}


def exception_error(exc: BaseException, own_frames: int = 0) -> dict[str, Any]:
    """The error as Lambda reports it; `own_frames` of the worker's are left out of the trace."""
    trace = exc.__traceback__
    for _ in range(own_frames):
        trace = trace.tb_next if trace is not None and trace.tb_next is not None else trace
    lines = traceback.format_exception(type(exc), exc, trace)
    described = error(type(exc).__name__, str(exc), [line.rstrip("\n") for line in lines])
    return {**described, **steering(exc)}


class PeakMemory:
    """Peak resident size of this process, in MB, as REPORT's Max Memory Used.

    VmHWM, not ru_maxrss: the latter keeps the peak of the router that forked us, across exec.
    Reading /proc/self/status costs tens of microseconds (the kernel formats every line), so it
    is read again only after page faults: resident memory grows only by faulting pages in, and
    the fault counters cost one getrusage.
    """

    def __init__(self) -> None:
        self._status = os.open("/proc/self/status", os.O_RDONLY)
        self._faults = -1
        self._peak_mb = 0.0

    def read(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        faults = usage.ru_minflt + usage.ru_majflt
        if faults != self._faults:
            self._faults = faults
            self._peak_mb = self._vm_hwm_mb()
        return self._peak_mb

    def _vm_hwm_mb(self) -> float:
        status = os.pread(self._status, STATUS_SIZE, 0)
        start = status.find(b"VmHWM:")
        if start < 0:
            return 0.0
        return int(status[start + 6 : status.index(b"kB", start)]) / 1024


def limit_memory(memory_mb: int) -> None:
    """Cap the address space at what init used plus the function's memory.

    The interpreter and the handler's imports are already mapped; the limit makes further
    allocations fail with MemoryError, which ends the invocation as out_of_memory.
    """
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    limit = mapped + memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _event_loop() -> Any:
    import asyncio  # only async handlers pay for it

    return asyncio.new_event_loop()


class Runner:
    def __init__(self, handler: Any, init: dict[str, Any]) -> None:
        self._handler = handler
        self._init = init
        self._loop = _event_loop() if is_async(handler) else None
        self._peak = PeakMemory()
        self._stream = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        init = self._init
        context = LambdaContext.create(
            init["function"],
            init["version"],
            init["memory_mb"],
            request["request_id"],
            init["timeout_s"],
            deadline_ms=request["deadline_ms"],
            qualifier=request.get("qualifier"),
        )
        if self._stream:
            context.log_stream_name = self._stream  # the environment's, as its variable says
        RequestIds.current = request["request_id"]
        reply = self._outcome(request["event"], context)
        RequestIds.current = None
        sys.stderr.flush()  # all its output is in the pipe before the reply is
        reply["max_memory_mb"] = self._peak.read()
        return reply

    def _outcome(self, event: Any, context: Any) -> dict[str, Any]:
        try:
            result = self._handler(event, context)
            if self._loop is not None:
                result = self._loop.run_until_complete(result)
        except MemoryError:
            return out_of_memory(self._init["memory_mb"])
        except BaseException as exc:  # SystemExit from a handler is its failure, not ours
            return {"status": "failed", "error": exception_error(exc, own_frames=1)}
        try:  # only a result that is no JSON is a marshal error (a handler's TypeError is not)
            payload = dumps(result)
        except MemoryError:
            return out_of_memory(self._init["memory_mb"])
        except (TypeError, ValueError) as exc:
            message = f"Unable to marshal response: {exc}"
            return {"status": "failed", "error": error("Runtime.MarshalError", message)}
        if len(payload) > MAX_RESPONSE_BYTES:
            message = (
                f"Response payload size ({len(payload)} bytes) exceeded the maximum allowed "
                f"payload size ({MAX_RESPONSE_BYTES} bytes)."
            )
            return {"status": "failed", "error": error("Function.ResponseSizeTooLarge", message)}
        value = orjson.Fragment(payload) if orjson is not None else result
        return {"status": "succeeded", "result": value}


def out_of_memory(limit_mb: int) -> dict[str, Any]:
    message = f"the function exceeded its memory limit of {limit_mb} MB"
    return {"status": "failed", "fatal": True, "error": error("out_of_memory", message)}


class RequestIds:
    """The request id of the invocation running, for the log lines it writes."""

    current: str | None = None


def log_to_stderr() -> None:
    """Log records as Lambda's Python runtime writes them: level, time, request id, message."""
    import logging

    class _RequestId(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.aws_request_id = RequestIds.current
            return True

    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestId())
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # context.logger.info() is seen, as on Lambda


def prepare(init: dict[str, Any]) -> None:
    """Confine this process and put an uploaded bundle first on the path, before any of the
    function's code is imported."""
    if init.get("sandbox"):
        from router.executors.sandbox import confine

        confine(init["sandbox"])
    task_root = init.get("task_root")
    if task_root:
        os.chdir(task_root)
        sys.path.insert(0, task_root)


def main() -> int:
    # Keep the protocol's pipes to ourselves: handler prints go to stderr, reads see nothing.
    requests, replies = os.dup(0), os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    frames = Frames(requests)
    init = frames.read()
    if init is None:
        return 0
    started = time.perf_counter()
    try:
        prepare(init)
    except Exception as exc:
        write_frame(replies, {"init_error": error("Runtime.SandboxError", str(exc))})
        return 1
    log_to_stderr()
    try:
        handler = load(init["handler"])
    except HandlerError as exc:
        trace = exception_error(exc.__cause__)["trace"] if exc.__cause__ else []
        write_frame(replies, {"init_error": error(exc.kind, str(exc), trace)})
        return 1
    runner = Runner(handler, init)
    init_ms = (time.perf_counter() - started) * 1000
    limit_memory(init["memory_mb"])
    sys.stderr.flush()
    write_frame(replies, {"ready": True, "init_ms": init_ms, "pid": os.getpid()})
    while True:
        try:
            request = frames.read()
        except (MemoryError, ValueError):
            # The event itself is more than the function's memory holds (orjson says so with
            # a JSONDecodeError; what the router frames is always valid JSON otherwise).
            del frames
            write_frame(replies, out_of_memory(init["memory_mb"]))
            return 1
        if request is None:
            return 0
        reply = runner.run(request)
        write_frame(replies, reply)
        if reply.get("fatal"):
            return 1


if __name__ == "__main__":
    sys.exit(main())
