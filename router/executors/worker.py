"""The execution environment's own process: `python -m router.executors.worker`.

It imports the handler once (its init), then runs one invocation at a time for as long as the
router keeps it. Frames on the protocol are a 4-byte big-endian length and an orjson document;
the protocol owns the process's original stdin and stdout, and the handler's own prints go to
stderr, so nothing a handler writes can corrupt it.

Kept to the standard library and orjson so a cold start stays cheap.
"""

from __future__ import annotations

import os
import resource
import struct
import sys
import time
import traceback
from typing import Any

import orjson

from router.capture import capturing, install, text
from router.errors import steering
from router.loader import HandlerError, is_async, load

HEADER = struct.Struct(">I")
MB = 1024 * 1024


def read_frame(fd: int) -> Any:
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    body = _read_exactly(fd, HEADER.unpack(header)[0])
    return None if body is None else orjson.loads(body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = os.read(fd, size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def write_frame(fd: int, document: Any) -> None:
    body = orjson.dumps(document)
    os.write(fd, HEADER.pack(len(body)) + body)


def error(kind: str, message: str, trace: list[str] | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "trace": trace or []}


def exception_error(exc: BaseException) -> dict[str, Any]:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    described = error(type(exc).__name__, str(exc), [line.rstrip("\n") for line in lines])
    return {**described, **steering(exc)}


def max_rss_mb() -> float:
    """Peak resident size of this process. VmHWM, not ru_maxrss: the latter keeps the peak of
    the router that forked us, across exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


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
        from router.context import LambdaContext

        self._handler = handler
        self._init = init
        self._context_type = LambdaContext
        self._loop = _event_loop() if is_async(handler) else None

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        init = self._init
        context = self._context_type.create(
            init["function"],
            init["version"],
            init["memory_mb"],
            request["request_id"],
            init["timeout_s"],
        )
        context.deadline_ms = request["deadline_ms"]
        started = time.perf_counter()
        with capturing() as output:
            reply = self._outcome(request["event"], context)
        reply["logs"] = text(output)
        reply["duration_ms"] = (time.perf_counter() - started) * 1000
        reply["max_memory_mb"] = max_rss_mb()
        return reply

    def _outcome(self, event: Any, context: Any) -> dict[str, Any]:
        try:
            result = self._handler(event, context)
            if self._loop is not None:
                result = self._loop.run_until_complete(result)
            payload = orjson.dumps(result)
        except MemoryError:
            limit = self._init["memory_mb"]
            message = f"the function exceeded its memory limit of {limit} MB"
            return {"status": "failed", "fatal": True, "error": error("out_of_memory", message)}
        except orjson.JSONEncodeError as exc:
            message = f"Unable to marshal response: {exc}"
            return {"status": "failed", "error": error("Runtime.MarshalError", message)}
        except BaseException as exc:  # SystemExit from a handler is its failure, not ours
            return {"status": "failed", "error": exception_error(exc)}
        return {"status": "succeeded", "result": orjson.Fragment(payload)}


def main() -> int:
    # Keep the protocol's pipes to ourselves: handler prints go to stderr, reads see nothing.
    requests, replies = os.dup(0), os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    install()
    import logging

    logging.getLogger().setLevel(logging.INFO)  # context.logger.info() is seen, as on Lambda
    init = read_frame(requests)
    if init is None:
        return 0
    started = time.perf_counter()
    try:
        handler = load(init["handler"])
    except HandlerError as exc:
        trace = exception_error(exc.__cause__)["trace"] if exc.__cause__ else []
        write_frame(replies, {"init_error": error(exc.kind, str(exc), trace)})
        return 1
    runner = Runner(handler, init)
    init_ms = (time.perf_counter() - started) * 1000
    limit_memory(init["memory_mb"])
    write_frame(replies, {"ready": True, "init_ms": init_ms, "pid": os.getpid()})
    while (request := read_frame(requests)) is not None:
        reply = runner.run(request)
        write_frame(replies, reply)
        if reply.get("fatal"):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
