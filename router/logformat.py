"""The router's own logs: one JSON object per line for collectors, plain text for terminals.

Records may carry `request_id`, `function` and `trigger` (via `extra=`); JSON lines include
them as fields so a log system can follow one invocation.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener

import orjson
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

FIELDS = ("request_id", "function", "trigger")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(level: str, style: str) -> None:
    """`style`: json, plain, or auto (plain on a terminal, JSON otherwise).

    Records are handed to a writer thread through a bounded queue and formatted there: the
    event loop never waits for stderr (a pipe nobody reads would otherwise stall it, and every
    event with it). When the queue is full, lines are dropped and counted (`dropped()`,
    `router_log_lines_dropped_total`), as output is not the work.
    """
    if style == "auto":
        style = "plain" if sys.stderr.isatty() else "json"
    stream = logging.StreamHandler(sys.stderr)
    if style == "json":
        stream.setFormatter(JsonFormatter())
    else:
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    lines: queue.Queue[logging.LogRecord] = queue.Queue(QUEUED_LINES)
    listener = QueueListener(lines, stream, respect_handler_level=False)
    listener.start()
    atexit.register(listener.stop)  # what is queued is written before the process ends
    logging.basicConfig(level=level.upper(), handlers=[_Queued(lines)], force=True)


QUEUED_LINES = 2_000  # a burst's worth; past it the event loop would wait for stderr
_dropped = 0


def dropped() -> int:
    """Lines dropped because the writer could not keep up (stderr stalled or too slow)."""
    return _dropped


class _Queued(QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # formatted by the writer thread, off the event loop

    def enqueue(self, record: logging.LogRecord) -> None:
        global _dropped
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            _dropped += 1


class AccessLog(AbstractAccessLogger):
    """The access lines a REPORT line does not already tell: admin API calls and every
    refusal (status 400 and up). A webhook that ran is in its invocation's REPORT line and in
    `router_webhook_requests_total`; a line per request repeating it cost every request."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if response.status < 400 and not request.path.startswith("/api/"):
            return
        self.logger.info(
            '%s "%s %s" %d %.1f ms',
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
