"""Async invocation records in Redis, kept for a retention period and read through the API."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import orjson
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.names import Names

log = logging.getLogger("router.invocations")
FLUSH_S = 0.02
MAX_PENDING = 100_000

Status = Literal["queued", "running", "succeeded", "failed", "timed_out", "dead_lettered"]


class Invocation(BaseModel):
    id: str
    function: str
    status: Status
    trigger: str | None = None
    event_id: str | None = None
    function_version: int | None = None
    attempt: int = 1
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    billed_duration_ms: int | None = None
    result: Any = None
    error: dict[str, Any] | None = None


Record = dict[str, Any]  # an Invocation's fields: the hot path skips model validation


class InvocationStore:
    """Records are written behind: `save` and `queued` only buffer, and a loop writes the latest
    state of each record every few milliseconds in one pipeline, so neither accepting nor running
    an event waits for Redis (and a record that went running → succeeded in between is written
    once)."""

    def __init__(self, redis: Redis, names: Names, ttl_s: int) -> None:
        self._redis = redis
        self._names = names
        self._ttl_s = ttl_s
        self._pending: dict[str, Record] = {}
        self._queued: dict[str, Record] = {}

    async def queued(self, record: Invocation) -> None:
        """Buffer a `queued` record, written with NX: the consumer (maybe of another replica) may
        already have written `running`, and a record never moves backwards."""
        if record.id not in self._pending:
            self._queued[record.id] = record.model_dump()

    def save(self, record: Record) -> None:
        """Buffer the record's current state. The store keeps the dict itself: change it only to
        save it again."""
        self._pending[record["id"]] = record
        self._queued.pop(record["id"], None)
        if len(self._pending) > MAX_PENDING:  # Redis away for long: records are not the work
            self._pending.pop(next(iter(self._pending)))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        queued, self._queued = self._queued, {}
        if not batch and not queued:
            return
        # Serialised now: callers may reuse a record dict once this flush is under way.
        writes = [(self._key(i), orjson.dumps(r)) for i, r in batch.items()]
        creates = [(self._key(i), orjson.dumps(r)) for i, r in queued.items()]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, raw in creates:
                    pipe.set(key, raw, ex=self._ttl_s, nx=True)
                for key, raw in writes:
                    pipe.set(key, raw, ex=self._ttl_s)
                await pipe.execute()
        except RedisError as exc:
            self._pending = {**batch, **self._pending}  # newer states win
            self._queued = {**queued, **self._queued}
            log.warning("%d invocation records not written yet: %s", len(batch) + len(queued), exc)

    async def get(self, invocation_id: str) -> Invocation | None:
        pending = self._pending.get(invocation_id) or self._queued.get(invocation_id)
        if pending is not None:
            return Invocation.model_validate(pending)
        raw = await self._redis.get(self._key(invocation_id))
        return None if raw is None else Invocation.model_validate_json(raw)

    async def forget(self, invocation_id: str) -> None:
        self._queued.pop(invocation_id, None)
        await self._redis.delete(self._key(invocation_id))

    def _key(self, invocation_id: str) -> str:
        return self._names.invocation(invocation_id)
