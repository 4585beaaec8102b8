"""The write-behind invocation store against the real Redis: the latest state wins, a `queued`
record never overwrites one the consumer already moved on, and records carry the TTL."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import redis.asyncio

from router.invocations import CHUNK, InvocationStore
from router.names import Names
from tests.conftest import REDIS_URL

TTL_S = 600


def run(scenario: Callable[[InvocationStore, redis.asyncio.Redis], Awaitable[None]]) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        names = Names(f"test-inv-{secrets.token_hex(4)}")
        try:
            await scenario(InvocationStore(client, names, TTL_S), client)
        finally:
            keys = [key async for key in client.scan_iter(f"{names.namespace}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(main())


def queued(invocation_id: str) -> dict[str, object]:
    return {"id": invocation_id, "function": "f", "status": "queued", "created_at": 1.0}


def running(invocation_id: str) -> dict[str, object]:
    return {"id": invocation_id, "function": "f", "status": "running", "created_at": 1.0}


def test_queued_never_overwrites_a_later_state() -> None:
    async def scenario(store: InvocationStore, client: redis.asyncio.Redis) -> None:
        store.save(running("a"))  # another replica's consumer got there first
        await store.flush()
        store.queued(queued("a"))
        store.queued(queued("b"))
        await store.flush()
        a, b = await store.get("a"), await store.get("b")
        assert a is not None
        assert a.status == "running"
        assert b is not None
        assert b.status == "queued"
        assert 0 < await client.ttl(store._key("b")) <= TTL_S

    run(scenario)


def test_latest_state_wins_and_is_readable_before_the_flush() -> None:
    async def scenario(store: InvocationStore, client: redis.asyncio.Redis) -> None:
        store.queued(queued("c"))
        record = running("c")
        store.save(record)
        record["status"] = "succeeded"
        store.save(record)
        pending = await store.get("c")
        assert pending is not None
        assert pending.status == "succeeded"
        await store.flush()
        stored = await store.get("c")
        assert stored is not None
        assert stored.status == "succeeded"

    run(scenario)


def test_more_records_than_one_script_call_takes() -> None:
    async def scenario(store: InvocationStore, client: redis.asyncio.Redis) -> None:
        count = CHUNK * 2 + 7
        for i in range(count):
            store.queued(queued(f"q{i}"))
            store.save(running(f"r{i}"))
        await store.flush()
        for name in (f"q{count - 1}", f"r{count - 1}", "q0", "r0"):
            record = await store.get(name)
            assert record is not None, name

    run(scenario)
