"""Peer task queues measured against the router on the same work (see bench/README.md).

Each app reads its queue name from `BENCH_PEER_QUEUE` and its Redis from `BENCH_REDIS_URL`
at import, so every run uses a fresh queue that the bench deletes afterwards. The task body is
the router's `incr` handler: one Redis INCR of the counter named by the event's `key`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("BENCH_PEER_QUEUE", "bench-peer")

_client: redis.Redis | None = None


def incr(key: str) -> None:
    """One INCR on a per-process client, made on first use (after the worker forked)."""
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(REDIS_URL)
    _client.incr(key)
