"""Async invocation records in Redis, kept for a retention period and read through the API."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel
from redis.asyncio import Redis

from router.names import Names

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
    def __init__(self, redis: Redis, names: Names, ttl_s: int) -> None:
        self._redis = redis
        self._names = names
        self._ttl_s = ttl_s

    async def queued(self, record: Invocation) -> None:
        # NX: the consumer may already have written `running`; never move a record backwards.
        await self._redis.set(self._key(record.id), _dump(record), ex=self._ttl_s, nx=True)

    async def save(self, record: Invocation) -> None:
        await self._redis.set(self._key(record.id), _dump(record), ex=self._ttl_s)

    async def get(self, invocation_id: str) -> Invocation | None:
        raw = await self._redis.get(self._key(invocation_id))
        return None if raw is None else Invocation.model_validate_json(raw)

    async def forget(self, invocation_id: str) -> None:
        await self._redis.delete(self._key(invocation_id))

    def _key(self, invocation_id: str) -> str:
        return self._names.invocation(invocation_id)


def _dump(record: Invocation) -> bytes:
    return orjson.dumps(record.model_dump())
