"""The benchmark's own handlers, referenced as `bench.handlers:<name>`.

The router runs with the repository root as its working directory, so `bench` resolves as a
namespace package there (a plain `handlers:<name>` would find the repository's own `handlers`
package first).

The same file is also uploaded, as `handlers.py` in the bench's `python3.11` bundles
(bench/bundles.py): uploaded code then runs exactly these functions. There it sees only the
function's `env`, which carries `ROUTER_REDIS_URL`.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis
    import redis.asyncio

REDIS_URL = os.environ.get("ROUTER_REDIS_URL", "redis://localhost:6379/0")

# Module-level clients, made on first use: importing redis-py costs ~100 ms, which would
# otherwise count in every cold start of `noop` (and this module is what the cold-start
# scenario measures the platform with).
_redis: redis.Redis | None = None
_aredis: redis.asyncio.Redis | None = None


def noop(event: Any, context: Any) -> dict[str, Any]:
    return {"ok": True}


async def noop_async(event: Any, context: Any) -> dict[str, Any]:
    return {"ok": True}


def sleep(event: Any, context: Any) -> dict[str, Any]:
    seconds = float(_field(event, "sleep", 1.0))
    time.sleep(seconds)
    return {"slept": seconds}


async def sleep_async(event: Any, context: Any) -> dict[str, Any]:
    seconds = float(_field(event, "sleep", 1.0))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


def incr(event: Any, context: Any) -> dict[str, Any]:
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(REDIS_URL)
    value = _redis.incr(str(_field(event, "key", "bench:counter")))
    return {"value": value}


async def incr_async(event: Any, context: Any) -> dict[str, Any]:
    global _aredis
    if _aredis is None:  # bound to the router's event loop on first use
        import redis.asyncio

        _aredis = redis.asyncio.Redis.from_url(REDIS_URL)
    value = await _aredis.incr(str(_field(event, "key", "bench:counter")))
    return {"value": value}


def _field(event: Any, name: str, default: Any) -> Any:
    """A field of a direct invoke's event, or of an AMQP event's decoded JSON body."""
    if isinstance(event, dict):
        if name in event:
            return event[name]
        body = event.get("body")
        if isinstance(body, dict) and name in body:
            return body[name]
    return default
