"""Invocation output in Redis: one stream entry per invocation, per function, bounded in count
and age, written in batches so the hot path never waits for Redis.

While Redis is away, output waits in memory up to `MAX_PENDING_BYTES`; past it the oldest is
dropped and counted (`router_log_entries_dropped_total{function}`): the output is not the work,
and memory the router needs to run the work must not go to it.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from router.metrics import Metrics
from router.names import Names
from router.writebehind import WriteBehind

log = logging.getLogger("router.logstore")
FLUSH_S = 0.25
MAX_PENDING_BYTES = 16 << 20  # output waiting for Redis; past it the oldest is dropped
# Memory an entry holds besides its text (the entry, its request id and time): counted, so that
# many tiny entries are bounded too.
ENTRY_OVERHEAD = 256
CHUNK = 500  # entries per script call: bounded so Redis is never blocked for long
SCAN = 10_000  # entries looked through to find the newest that match a filter
# One call for a batch (a pipeline of XADDs cost the router several times the CPU: every
# invocation writes one). KEYS: a stream per entry; ARGV: the retention start (ms), then per
# entry its max length, the oldest id its function keeps, request id, time and text.
STORE_LOGS = """
local trimmed = {}
for i, key in ipairs(KEYS) do
  local at = (i - 1) * 5 + 1
  redis.call('XADD', key, 'MAXLEN', '~', ARGV[at], '*',
             'request_id', ARGV[at + 2], 'at', ARGV[at + 3], 'text', ARGV[at + 4])
  if not trimmed[key] then
    trimmed[key] = true
    redis.call('XTRIM', key, 'MINID', '~', ARGV[at + 1])
  end
end
"""


@dataclass(frozen=True, slots=True)
class Entry:
    function: str
    request_id: str
    text: str
    at: float
    size: int  # bytes of memory it holds, counted against MAX_PENDING_BYTES
    max_entries: int
    retention_s: int


class LogStore:
    def __init__(
        self,
        redis: Redis,
        names: Names,
        max_entries: int,
        retention_s: int,
        metrics: Metrics,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self._redis = redis
        self._names = names
        self._max_entries = max_entries
        self._retention_s = retention_s
        self._metrics = metrics
        # By arrival number: entries are only ever added, oldest first.
        self._pending = WriteBehind[int, Entry](
            "invocation log entries",
            self._write,
            FLUSH_S,
            log,
            limit=max_pending_bytes,
            weigh=_size,
            dropped=self._dropped,
        )
        self._numbers = itertools.count()
        self._store_logs = redis.register_script(STORE_LOGS)

    @property
    def pending_bytes(self) -> int:
        """Memory held by output not yet in Redis (at most `max_pending_bytes`)."""
        return self._pending.weight

    def append(
        self,
        function: str,
        request_id: str,
        text: str,
        max_entries: int | None = None,
        retention_s: int | None = None,
    ) -> None:
        """Buffer one invocation's entry; a function's own bounds override the router's."""
        self._metrics.log_output_seen(function)
        size = sys.getsizeof(text) + ENTRY_OVERHEAD
        entry = Entry(
            function,
            request_id,
            text,
            time.time(),
            size,
            max_entries or self._max_entries,
            retention_s or self._retention_s,
        )
        self._pending.add(next(self._numbers), entry)

    def _dropped(self, entry: Entry) -> None:
        self._metrics.log_entry_dropped(entry.function)

    async def run(self) -> None:
        await self._pending.run()

    async def flush(self) -> None:
        await self._pending.flush()

    async def _write(self, batch: Mapping[int, Entry]) -> None:
        now_ms = int(time.time() * 1000)
        entries = list(batch.values())
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start : start + CHUNK]
            keys = [self._names.logs(e.function) for e in chunk]
            await self._store_logs(keys, [v for e in chunk for v in _values(e, now_ms)])

    async def read(
        self,
        function: str,
        *,
        after: str | None = None,
        since_ms: int | None = None,
        request_id: str | None = None,
        contains: str | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Entries oldest first: those after a stream id (to follow), or else the newest
        `limit` since a time; optionally only one request's, or those containing a text. Also
        the cursor to follow from: the newest id looked at (matching or not)."""
        key = self._names.logs(function)

        def wanted(entry: dict[str, Any]) -> bool:
            return (request_id is None or entry["request_id"] == request_id) and (
                contains is None or contains in entry["text"]
            )

        if after is not None:
            raw: Any = await self._redis.xrange(key, min=f"({after}", max="+", count=SCAN)
            entries = [_entry(item) for item in raw]
            matching = [e for e in entries if wanted(e)][:limit]
            # Stopped at `limit` matches: follow on from the last one shown; else from the
            # last one looked at, so that what did not match is not looked at again.
            last = matching[-1] if len(matching) == limit else (entries[-1] if entries else None)
            return matching, last["id"] if last else after
        oldest = "-" if since_ms is None else f"{since_ms}-0"
        scan = SCAN if request_id is not None or contains is not None else limit
        raw = await self._redis.xrevrange(key, max="+", min=oldest, count=scan)
        entries = [_entry(item) for item in raw]
        newest = [e for e in entries if wanted(e)][:limit]
        return newest[::-1], entries[0]["id"] if entries else None


def _size(entry: Entry) -> int:
    return entry.size


def _values(entry: Entry, now_ms: int) -> tuple[Any, ...]:
    oldest = now_ms - entry.retention_s * 1000
    return (entry.max_entries, oldest, entry.request_id, repr(entry.at), entry.text)


def _entry(item: tuple[bytes, dict[bytes, bytes]]) -> dict[str, Any]:
    entry_id, fields = item
    return {
        "id": entry_id.decode(),
        "request_id": fields[b"request_id"].decode(),
        "time": float(fields[b"at"]),
        "text": fields[b"text"].decode("utf-8", "replace"),
    }
