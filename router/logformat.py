"""The router's own logs: one JSON object per line for collectors, plain text for terminals.

Records may carry `request_id`, `function` and `trigger` (via `extra=`); JSON lines include
them as fields so a log system can follow one invocation.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from router.logwriter import LogWriter

FIELDS = ("request_id", "function", "trigger")


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        # (second, its date and time): one tuple, replaced whole, as threads may share it.
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {}
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                fields[name] = value
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return self.line(record.created, record.levelname, record.name, record.getMessage(), fields)

    def line(
        self, created: float, level: str, logger: str, message: str, fields: Mapping[str, object]
    ) -> str:
        head = {"time": self._time(created), "level": level, "logger": logger, "message": message}
        return orjson.dumps({**head, **fields}).decode()

    def _time(self, created: float) -> str:
        """ISO 8601 in UTC to the millisecond; the date and time to the second are made once a
        second (a datetime per line was most of a line's formatting)."""
        second = int(created)
        micros = round((created - second) * 1e6)  # rounded to the microsecond as datetime does
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        cached, stamp = self._second
        if second != cached:
            stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, stamp)
        return f"{stamp}.{micros // 1000:03d}+00:00"


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def line(
        self, created: float, level: str, logger: str, message: str, fields: Mapping[str, object]
    ) -> str:
        record = logging.LogRecord(logger, logging.getLevelName(level), "", 0, message, None, None)
        record.created, record.msecs = created, created % 1 * 1000
        return self.format(record)


def configure(level: str, style: str) -> None:
    """`style`: json, plain, or auto (plain on a terminal, JSON otherwise).

    Records go to a `LogWriter`: the event loop formats them and appends the lines, a thread
    writes them in batches, so it never waits for stderr, and a stderr nobody reads drops
    lines (counted by `dropped()`, `router_log_lines_dropped_total`) instead of stalling the
    router.
    """
    global _writer, _formatter
    if style == "auto":
        style = "plain" if sys.stderr.isatty() else "json"
    writer = LogWriter(sys.stderr)
    formatter = JsonFormatter() if style == "json" else PlainFormatter()
    writer.setFormatter(formatter)
    # No line shows a record's source file, thread or process, and finding them was most of
    # what a record cost to make (the logging HOWTO's "Optimization" switches).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(level=level.upper(), handlers=[writer], force=True)
    writer.start()  # logging.shutdown closes it at exit: what is waiting is written then
    _writer, _formatter = writer, formatter


_writer: LogWriter | None = None
_formatter: JsonFormatter | PlainFormatter | None = None


def info(logger: logging.Logger, message: str, **fields: str) -> None:
    """The line `logger.info(message, extra=fields)` writes, without a LogRecord: for the line
    every invocation writes (making the record and passing it through logging's handlers cost
    more than the rest of what logging a line costs). Through `logger` itself when the
    router's logging is not configured (the service's code run in-process)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    if _writer is None or _formatter is None:
        logger.info("%s", message, extra=fields)
        return
    _writer.append(_formatter.line(time.time(), "INFO", logger.name, message, fields))


def dropped() -> int:
    """Lines dropped because the writer could not keep up (stderr stalled or too slow)."""
    return 0 if _writer is None else _writer.dropped


class AccessLog(AbstractAccessLogger):
    """The access lines a REPORT line does not already tell: admin API calls and every
    refusal (status 400 and up). A webhook that ran is in its invocation's REPORT line and in
    `router_webhook_requests_total`; a line per request repeating it cost every request."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        # The path as received (no decoding needed to tell /api/ from the rest).
        if response.status < 400 and not request.raw_path.startswith("/api/"):
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
