"""Capturing what one invocation prints and logs, as Lambda sends it to CloudWatch.

`sys.stdout` and `sys.stderr` become thin proxies and a root logging handler is added; while
capturing (`begin`) is active in the current context (a task, or a thread run in a copied
context) writes go to that invocation's buffer instead of the real stream. Used by the router for
thread and inline handlers (process environments write to their own output pipe instead).
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar, Token
from typing import Any, TextIO

MAX_CHARS = 64 * 1024  # per invocation; the rest is cut, with a note
_buffer: ContextVar[list[str] | None] = ContextVar("router_capture", default=None)
_request: ContextVar[str | None] = ContextVar("router_capture_request", default=None)
_installed = False


class _Stream:
    def __init__(self, real: TextIO) -> None:
        self._real = real

    def write(self, text: str) -> int:
        buffer = _buffer.get()
        if buffer is None:
            return self._real.write(text)
        buffer.append(text)
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty... of the real stream
        return getattr(self._real, name)


class _Handler(logging.Handler):
    def handle(self, record: logging.LogRecord) -> bool:
        # Most records are the router's own, logged while nothing is captured: those cost a
        # context variable's read here, not Handler.handle's lock and filters.
        if _buffer.get() is None:
            return False
        return super().handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        buffer = _buffer.get()
        if buffer is not None:
            record.aws_request_id = _request.get()
            buffer.append(self.format(record) + "\n")


def install() -> None:
    """Once per process: route prints and log records of capturing contexts to their buffer."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.stdout = _Stream(sys.stdout)
    sys.stderr = _Stream(sys.stderr)
    handler = _Handler()
    # Lambda's line format: level, time (UTC), request id, message.
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.getLogger().addHandler(handler)


def begin(request_id: str | None = None) -> tuple[list[str], Token[list[str] | None]]:
    """Start capturing in the current context: the buffer, and the token that `end` takes.
    (No generator-based context manager: this runs for every thread and inline call.)"""
    buffer: list[str] = []
    _request.set(request_id)
    return buffer, _buffer.set(buffer)


def end(token: Token[list[str] | None]) -> None:
    _buffer.reset(token)


def text(buffer: list[str]) -> str:
    joined = "".join(buffer)
    if len(joined) > MAX_CHARS:
        return joined[:MAX_CHARS] + f"\n[output cut at {MAX_CHARS} characters]\n"
    return joined
