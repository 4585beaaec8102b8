"""The router's log writer: logging never waits for stderr, lines are written in batches and
in order, what is waiting at exit is written, and the JSON lines' time is exact."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router import logwriter
from router.logformat import JsonFormatter
from router.logwriter import LogWriter

ROOT = Path(__file__).resolve().parent.parent


class Stream:
    """A stream that records each write; `stall()` makes writes wait until `release()`."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.entered = threading.Event()  # a write has started
        self._open = threading.Event()
        self._open.set()

    def stall(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def write(self, text: str) -> int:
        self.entered.set()
        self._open.wait()
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def lines(self) -> list[str]:
        return "".join(self.writes).splitlines()


def record(n: int) -> logging.LogRecord:
    return logging.LogRecord("router.test", logging.INFO, "", 0, "line %d", (n,), None)


def writer(stream: Stream, capacity: int = logwriter.CAPACITY) -> LogWriter:
    handler = LogWriter(stream, capacity=capacity, every_s=0.01)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def test_a_stalled_stream_never_holds_the_logging_thread() -> None:
    stream = Stream()
    handler = writer(stream, capacity=100)
    stream.stall()
    handler.start()
    handler.handle(record(0))
    assert stream.entered.wait(5)  # the writer thread is stuck writing line 0
    for n in range(1, 106):  # each returns at once: 100 wait, the last 5 are dropped
        handler.handle(record(n))
    assert handler.dropped == 5
    stream.release()
    handler.close()
    assert stream.lines == [f"line {n}" for n in range(101)]


def test_lines_are_written_in_order_one_write_per_batch() -> None:
    stream = Stream()
    handler = writer(stream)
    for n in range(500):  # all waiting before the thread's first turn
        handler.handle(record(n))
    handler.start()
    handler.close()
    assert stream.lines == [f"line {n}" for n in range(500)]
    assert len(stream.writes) == 1
    assert handler.dropped == 0


def test_closing_gives_up_on_a_stream_that_accepts_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logwriter, "CLOSE_TIMEOUT_S", 0.2)
    stream = Stream()
    handler = writer(stream)
    stream.stall()
    handler.start()
    handler.handle(record(0))
    assert stream.entered.wait(5)
    handler.close()  # returns: the process may exit although stderr is stalled
    stream.release()


def test_a_record_that_cannot_be_formatted_costs_only_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", False)  # as in production: no traceback
    stream = Stream()
    handler = writer(stream)
    bad = logging.LogRecord("router.test", logging.INFO, "", 0, "%d", ("not a number",), None)
    for item in (record(1), bad, record(2)):
        handler.handle(item)
    handler.start()
    handler.close()
    assert stream.lines == ["line 1", "line 2"]


def test_lines_waiting_at_exit_are_written() -> None:
    # A process that logs a burst and exits at once: every line reaches its stderr.
    script = (
        "import logging\n"
        "from router import logformat\n"
        "logformat.configure('INFO', 'json')\n"
        "log = logging.getLogger('router.test')\n"
        "for n in range(1500):\n"
        "    log.info('line %d', n, extra={'request_id': f'r-{n}'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["message"] for line in lines] == [f"line {n}" for n in range(1500)]
    assert lines[7]["request_id"] == "r-7"
    assert {line["level"] for line in lines} == {"INFO"}


@pytest.mark.parametrize(
    "created",
    [
        1_764_460_800.0,  # a second's start
        1_764_460_800.9999,  # its last instant: still that second, 999 ms
        1_764_460_801.0005,
        1_764_460_800.123,  # 0.12299990654 as a float: 123 ms once rounded to the microsecond
        1_764_460_800.9999996,  # rounds up to the next second
        1_764_460_859.123456,
        951_782_400.5,  # 2000-02-29
    ],
)
def test_json_time_is_iso_8601_utc_to_the_millisecond(created: float) -> None:
    formatter = JsonFormatter()
    line = record(0)
    line.created = created
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert json.loads(formatter.format(line))["time"] == expected
    line.created = created + 61.25  # another second: made again, not the one kept
    later = datetime.fromtimestamp(created + 61.25, UTC).isoformat(timespec="milliseconds")
    assert json.loads(formatter.format(line))["time"] == later


@pytest.mark.parametrize("style", ["json", "plain"])
def test_an_invocation_line_reads_as_a_logged_one(style: str) -> None:
    # logformat.info writes, without a record, the line logger.info(..., extra=) writes.
    script = (
        "import logging\n"
        "from router import logformat\n"
        f"logformat.configure('INFO', '{style}')\n"
        "log = logging.getLogger('router.invoker')\n"
        "log.info('REPORT a\\tStatus: ok', extra={'request_id': 'r-1', 'function': 'f'})\n"
        "logformat.info(log, 'REPORT a\\tStatus: ok', request_id='r-1', function='f')\n"
        "logging.getLogger('router').setLevel(logging.WARNING)\n"
        "logformat.info(log, 'not written', request_id='r-2', function='f')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr[-2000:]
    logged, written = done.stderr.splitlines()
    if style == "json":
        logged_fields, written_fields = json.loads(logged), json.loads(written)
        assert logged_fields.pop("time")[:16] == written_fields.pop("time")[:16]
        assert logged_fields == written_fields
    else:  # "<date> <time,ms> INFO router.invoker REPORT a\tStatus: ok"
        assert logged.split(" ", 2)[2] == written.split(" ", 2)[2]
        assert written.split(" ", 2)[2] == "INFO router.invoker REPORT a\tStatus: ok"
