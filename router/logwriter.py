"""The router's log writer: lines wait in memory and a thread writes them in batches.

Logging a line costs the event loop its formatting and an append to a deque. The writer thread
wakes every `WRITE_EVERY_S` and writes what accumulated in one call: a queue whose `put` woke
the writer for every line (a condition variable's notify, then the two threads taking turns at
the GIL) had put a quarter of a webhook request's profile samples in logging at the default
log level, for one REPORT line. Lines wait as strings, not records: a record kept until the
writer's turn would be a garbage-collected object outliving young collections, which a string
is not. So the event loop never waits for stderr either: a pipe nobody reads blocks the writer
only, while lines past `capacity` are dropped and counted (output is not the work).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TextIO

WRITE_EVERY_S = 0.05  # how late a line may reach stderr; a batch per turn, not a write per line
CAPACITY = 2_000  # lines waiting (40,000 lines a second); past it, when stderr stalls, dropped
CLOSE_TIMEOUT_S = 5.0  # at exit, for what is still waiting (a stalled stderr never ends it)


class LogWriter(logging.Handler):
    """A handler that formats records and keeps the lines for its writer thread (`start` it
    once configured)."""

    def __init__(
        self,
        stream: TextIO,
        capacity: int = CAPACITY,
        every_s: float = WRITE_EVERY_S,
    ) -> None:
        super().__init__()
        self._stream = stream
        self._capacity = capacity
        self._every_s = every_s
        self._lines: deque[str] = deque()
        self._dropped = 0
        self._counting = threading.Lock()  # drops may come from any thread
        self._writing = threading.Lock()  # one batch at a time, in order
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="router-log-writer", daemon=True)

    @property
    def dropped(self) -> int:
        """Lines dropped because the writer could not keep up (stderr stalled or too slow)."""
        return self._dropped

    def start(self) -> None:
        self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:
        # Without Handler.handle's lock: a deque's append is atomic, and nothing else is shared.
        if self.filters and not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)  # as logging does: one bad record, the others written
            return
        self.append(line)

    def append(self, line: str) -> None:
        """A line formatted already, written in its turn (or dropped, counted, past capacity)."""
        if len(self._lines) >= self._capacity:
            with self._counting:
                self._dropped += 1
            return
        self._lines.append(line)

    def close(self) -> None:
        """Write what is waiting and stop the thread (`logging.shutdown` calls this at exit);
        a stderr that accepts nothing for CLOSE_TIMEOUT_S does not hold the exit."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(CLOSE_TIMEOUT_S)
        elif self._thread.ident is None:  # never started: what was logged is written here
            self._write()
        super().close()

    def _run(self) -> None:
        while not self._closing.wait(self._every_s):
            self._write()
        self._write()

    def _write(self) -> None:
        with self._writing:
            lines = self._lines
            # Only what is there now: lines appended meanwhile wait for the next batch.
            batch = [lines.popleft() for _ in range(len(lines))]
            if not batch:
                return
            try:
                self._stream.write("\n".join(batch) + "\n")
                self._stream.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": batch[-1]}))
