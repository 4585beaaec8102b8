"""Async invocation records in Redis, kept for a retention period and read through the API."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel
from redis.asyncio import Redis

from router.names import Names
from router.writebehind import WriteBehind

if TYPE_CHECKING:
    from router.executors import ErrorInfo, Outcome

log = logging.getLogger("router.invocations")
FLUSH_S = 0.02
MAX_PENDING = 100_000
CHUNK = 1000  # records per script call: bounded so Redis is never blocked for long
# KEYS: records; ARGV: ttl, how many of the first keys are only created (NX), then the values.
STORE_RECORDS = """
local ttl, nx = ARGV[1], tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  if i <= nx then
    redis.call('SET', key, ARGV[i + 2], 'EX', ttl, 'NX')
  else
    redis.call('SET', key, ARGV[i + 2], 'EX', ttl)
  end
end
"""

Status = Literal["queued", "running", "succeeded", "failed", "timed_out", "dead_lettered"]


class Invocation(BaseModel):
    id: str
    function: str
    status: Status
    trigger: str | None = None
    event_id: str | None = None
    function_version: str | int | None = None  # `$LATEST` or a published number
    attempt: int = 1
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    billed_duration_ms: int | None = None
    result: Any = None
    error: dict[str, Any] | None = None


Record = dict[str, Any]  # an Invocation's fields: the hot path skips model validation
# A record waiting to be written, and whether only as its creation (`queued`, written with NX).
Pending = tuple[Record, bool]


class InvocationStore:
    """Records are written behind: `save` and `queued` only buffer, and a loop writes the latest
    state of each record every few milliseconds in one pipeline, so neither accepting nor running
    an event waits for Redis (and a record that went running → succeeded in between is written
    once)."""

    def __init__(self, redis: Redis, names: Names, ttl_s: int) -> None:
        self._redis = redis
        self._names = names
        self._ttl_s = ttl_s
        # Redis away for long: the oldest records go past the bound (records are not the work).
        self._pending = WriteBehind[str, Pending](
            "invocation records", self._write, FLUSH_S, log, merge=_later, limit=MAX_PENDING
        )
        self._store_records = redis.register_script(STORE_RECORDS)

    def queued(self, record: Record) -> None:
        """Buffer a `queued` record, written with NX: the consumer (maybe of another replica) may
        already have written `running`, and a record never moves backwards."""
        waiting = self._pending.get(record["id"])
        if waiting is None or waiting[1]:
            self._pending.add(record["id"], (record, True))

    def save(self, record: Record) -> None:
        """Buffer the record's current state. The store keeps the dict itself: change it only to
        save it again."""
        self._pending.add(record["id"], (record, False))

    async def run(self) -> None:
        await self._pending.run()

    async def flush(self) -> None:
        await self._pending.flush()

    async def _write(self, batch: Mapping[str, Pending]) -> None:
        # Serialised before the first wait: callers may change a record dict once this write
        # is under way.
        creates = [(self._key(i), orjson.dumps(r)) for i, (r, nx) in batch.items() if nx]
        writes = [(self._key(i), orjson.dumps(r)) for i, (r, nx) in batch.items() if not nx]
        records = creates + writes
        for start in range(0, len(records), CHUNK):
            nx = max(0, len(creates) - start)  # creates come first
            await self._write_chunk(records[start : start + CHUNK], nx)

    async def _write_chunk(self, chunk: list[tuple[str, bytes]], nx: int) -> None:
        """One script call for up to CHUNK records, the first `nx` of them only if absent:
        packing one command costs the router several times less than a pipeline of SETs."""
        keys = [key for key, _ in chunk]
        await self._store_records(keys=keys, args=[self._ttl_s, nx, *(raw for _, raw in chunk)])

    async def get(self, invocation_id: str) -> Invocation | None:
        waiting = self._pending.get(invocation_id)
        if waiting is not None:
            return Invocation.model_validate(waiting[0])
        raw = await self._redis.get(self._key(invocation_id))
        return None if raw is None else Invocation.model_validate_json(raw)

    def _key(self, invocation_id: str) -> str:
        return self._names.invocation(invocation_id)


def _later(kept: Pending, since: Pending) -> Pending:
    """The newer state, except that a creation never replaces a state moved on from it."""
    return kept if since[1] and not kept[1] else since


def finished(outcome: Outcome) -> Record:
    """A record's fields once its invocation has an outcome."""
    return {
        "status": outcome.status,
        "finished_at": time.time(),
        "duration_ms": round(outcome.duration_ms, 3),
        "billed_duration_ms": outcome.billed_ms,
        "result": outcome.result,
        "error": error_record(outcome.error),
    }


def error_record(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "traceback": "\n".join(error.trace)}
