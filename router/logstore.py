"""Invocation output in Redis: one stream entry per invocation, per function, bounded in count
and age, written in batches so the hot path never waits for Redis.

While Redis is away, output waits in memory up to `MAX_PENDING_BYTES`; past it the oldest is
dropped and counted (`router_log_entries_dropped_total{function}`): the output is not the work,
and memory the router needs to run the work must not go to it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.metrics import Metrics
from router.names import Names

log = logging.getLogger("router.logstore")
FLUSH_S = 0.25
MAX_PENDING_BYTES = 16 << 20  # output waiting for Redis; past it the oldest is dropped
# Memory an entry holds besides its text (the entry, its request id and time): counted, so that
# many tiny entries are bounded too.
ENTRY_OVERHEAD = 256


@dataclass(frozen=True)
class Entry:
    function: str
    request_id: str
    text: str
    at: float
    size: int  # bytes of memory it holds, counted against MAX_PENDING_BYTES


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
        self._max_pending_bytes = max_pending_bytes
        self._pending: deque[Entry] = deque()
        self._pending_bytes = 0

    @property
    def pending_bytes(self) -> int:
        """Memory held by output not yet in Redis (at most `max_pending_bytes`)."""
        return self._pending_bytes

    def append(self, function: str, request_id: str, text: str) -> None:
        # The function's drop count exists (at 0) from its first output on: a counter series
        # born at its first drop would have that drop missed by increase() and rate().
        self._metrics.child(self._metrics.log_entries_dropped, function)
        size = sys.getsizeof(text) + ENTRY_OVERHEAD
        self._pending.append(Entry(function, request_id, text, time.time(), size))
        self._pending_bytes += size
        self._drop_oldest()

    def _drop_oldest(self) -> None:
        """Keeps the pending output within its bound, dropping (and counting) the oldest."""
        while self._pending_bytes > self._max_pending_bytes:
            dropped = self._pending.popleft()
            self._pending_bytes -= dropped.size
            self._metrics.child(self._metrics.log_entries_dropped, dropped.function).inc()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, batch_bytes = self._pending, self._pending_bytes
        self._pending, self._pending_bytes = deque(), 0
        oldest = f"{int((time.time() - self._retention_s) * 1000)}-0"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry in batch:
                    fields = {
                        "request_id": entry.request_id,
                        "at": repr(entry.at),
                        "text": entry.text,
                    }
                    pipe.xadd(
                        self._names.logs(entry.function),
                        fields,  # type: ignore[arg-type]
                        maxlen=self._max_entries,
                        approximate=True,
                    )
                for function in {e.function for e in batch}:
                    pipe.xtrim(self._names.logs(function), minid=oldest, approximate=True)
                await pipe.execute()
        except RedisError as exc:
            # Kept for the next try, ahead of what came in meanwhile, within the bound.
            batch.extend(self._pending)
            self._pending, self._pending_bytes = batch, batch_bytes + self._pending_bytes
            self._drop_oldest()
            log.warning("invocation logs not stored yet: %s", exc)

    async def read(
        self, function: str, *, after: str = "-", request_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Entries after a stream id (oldest first), optionally of one request."""
        start = after if after == "-" else f"({after}"
        raw: Any = await self._redis.xrange(
            self._names.logs(function), min=start, max="+", count=None if request_id else limit
        )
        entries = [_entry(entry_id, fields) for entry_id, fields in raw]
        if request_id:
            entries = [e for e in entries if e["request_id"] == request_id]
        return entries[-limit:] if after == "-" else entries[:limit]


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    return {
        "id": entry_id.decode(),
        "request_id": fields[b"request_id"].decode(),
        "time": float(fields[b"at"]),
        "text": fields[b"text"].decode("utf-8", "replace"),
    }
