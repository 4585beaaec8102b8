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


class InvocationStore:
    """Records are written behind: `save` only buffers, and a loop writes the latest state of
    each record every few milliseconds in one pipeline, so running an event never waits for
    Redis (and a record that went running → succeeded in between is written once)."""

    def __init__(self, redis: Redis, names: Names, ttl_s: int) -> None:
        self._redis = redis
        self._names = names
        self._ttl_s = ttl_s
        self._pending: dict[str, Invocation] = {}

    async def queued(self, record: Invocation) -> None:
        # NX: the consumer may already have written `running`; never move a record backwards.
        await self._redis.set(self._key(record.id), _dump(record), ex=self._ttl_s, nx=True)

    def save(self, record: Invocation) -> None:
        self._pending[record.id] = record
        if len(self._pending) > MAX_PENDING:  # Redis away for long: records are not the work
            self._pending.pop(next(iter(self._pending)))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for record in batch.values():
                    pipe.set(self._key(record.id), _dump(record), ex=self._ttl_s)
                await pipe.execute()
        except RedisError as exc:
            self._pending = {**batch, **self._pending}  # newer states win
            log.warning("%d invocation records not written yet: %s", len(batch), exc)

    async def get(self, invocation_id: str) -> Invocation | None:
        pending = self._pending.get(invocation_id)
        if pending is not None:
            return pending
        raw = await self._redis.get(self._key(invocation_id))
        return None if raw is None else Invocation.model_validate_json(raw)

    async def forget(self, invocation_id: str) -> None:
        await self._redis.delete(self._key(invocation_id))

    def _key(self, invocation_id: str) -> str:
        return self._names.invocation(invocation_id)


def _dump(record: Invocation) -> bytes:
    return orjson.dumps(record.model_dump())
