"""Invocation output waiting for an absent Redis is bounded in bytes: the oldest is dropped and
counted, the newest is stored once Redis answers again. Redis is made absent without stopping
anything: the store talks to a port where nothing listens (connections refused), and later to a
forwarder to the real Redis opened on that same port."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from router.logstore import ENTRY_OVERHEAD, MAX_PENDING_BYTES, LogStore
from router.metrics import Metrics
from router.names import Names
from tests.conftest import REDIS_URL, free_port

OUTPUT = 64 * 1024  # the most one invocation's output holds
OFFERED = 1000  # 64 MB of output while Redis is away


def dropped(metrics: Metrics, function: str) -> float:
    value = metrics.registry.get_sample_value(
        "router_log_entries_dropped_total", {"function": function}
    )
    return value or 0.0


@contextlib.asynccontextmanager
async def redis_on(port: int) -> AsyncIterator[None]:
    """The real Redis, reachable on `port` for as long as the context lasts."""
    real = urlsplit(REDIS_URL)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            real.hostname, real.port or 6379
        )
        await asyncio.gather(
            pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
        )

    server = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


def test_output_waiting_for_redis_is_bounded_in_bytes_and_drops_the_oldest() -> None:
    async def main() -> None:
        port = free_port()  # nothing listens there: Redis is away
        away = Redis(
            host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        names, metrics = Names(f"test-{uuid.uuid4().hex[:10]}"), Metrics()
        store = LogStore(away, names, 10_000, 3600, metrics)
        function = "chatty"
        size = sys.getsizeof("x" * OUTPUT) + ENTRY_OVERHEAD
        for n in range(OFFERED):
            store.append(function, f"req-{n:04d}", f"{n:04d}" + "x" * (OUTPUT - 4))
        assert store.pending_bytes <= MAX_PENDING_BYTES
        kept = MAX_PENDING_BYTES // size
        assert store.pending_bytes == kept * size
        assert dropped(metrics, function) == OFFERED - kept

        await store.flush()  # refused: everything is kept for the next try, nothing more dropped
        assert store.pending_bytes == kept * size
        assert dropped(metrics, function) == OFFERED - kept
        store.append(function, "req-late", "late" + "x" * (OUTPUT - 4))
        assert store.pending_bytes <= MAX_PENDING_BYTES
        assert dropped(metrics, function) == OFFERED - kept + 1

        real = Redis.from_url(REDIS_URL)
        try:
            async with redis_on(port):
                await store.flush()
            assert store.pending_bytes == 0
            stored = await real.xrange(names.logs(function))
            request_ids = [fields[b"request_id"].decode() for _, fields in stored]
            newest = [f"req-{n:04d}" for n in range(OFFERED - kept + 1, OFFERED)]
            assert request_ids == [*newest, "req-late"]
        finally:
            await real.delete(names.logs(function))
            await real.aclose()
            await away.aclose()

    asyncio.run(main())


def test_tiny_entries_are_bounded_too() -> None:
    async def main() -> None:
        away = Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
        metrics = Metrics()
        store = LogStore(away, Names("unused"), 10, 60, metrics, max_pending_bytes=64 * 1024)
        for n in range(10_000):
            store.append("quiet", str(n), "")
        assert store.pending_bytes <= 64 * 1024
        assert dropped(metrics, "quiet") >= 10_000 - 64 * 1024 // ENTRY_OVERHEAD
        await away.aclose()

    asyncio.run(main())


def test_a_function_has_a_drop_count_from_its_first_output() -> None:
    """At 0 before any drop: a series born at its first drop would hide it from increase()."""
    metrics = Metrics()
    store = LogStore(Redis(port=free_port()), Names("unused"), 10, 60, metrics)
    assert (
        metrics.registry.get_sample_value(
            "router_log_entries_dropped_total", {"function": "said-something"}
        )
        is None
    )
    store.append("said-something", "req", "hello")
    assert (
        metrics.registry.get_sample_value(
            "router_log_entries_dropped_total", {"function": "said-something"}
        )
        == 0.0
    )
