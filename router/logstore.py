"""Invocation output in Redis: one stream entry per invocation, per function, bounded in count
and age, written in batches so the hot path never waits for Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.names import Names

log = logging.getLogger("router.logstore")
FLUSH_S = 0.25
MAX_PENDING = 10_000  # entries waiting for Redis; past it the oldest are dropped, and counted


@dataclass(frozen=True)
class Entry:
    function: str
    request_id: str
    text: str
    at: float


class LogStore:
    def __init__(self, redis: Redis, names: Names, max_entries: int, retention_s: int) -> None:
        self._redis = redis
        self._names = names
        self._max_entries = max_entries
        self._retention_s = retention_s
        self._pending: list[Entry] = []

    def append(self, function: str, request_id: str, text: str) -> None:
        self._pending.append(Entry(function, request_id, text, time.time()))
        if len(self._pending) > MAX_PENDING:  # Redis away for long: output is not the work
            self._pending.pop(0)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
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
            self._pending = batch + self._pending  # keep them for the next try
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
