"""Replay protection for verified webhooks: a delivery is run once within its window.

A delivery is known by its replay key, made by `router.signatures` of signed data only (never
of a header a replayer could rewrite). The key is claimed before the event is handled and
released again if handling fails, so a sender's honest retry of a delivery we did not accept
still goes through.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.names import Names

log = logging.getLogger("router.replays")


class Replays:
    def __init__(self, redis: Redis, names: Names) -> None:
        self._redis = redis
        self._names = names

    async def claim(self, trigger: str, key: str, window_s: int) -> bool:
        """True for a first delivery; False for a replay. Fails open without Redis."""
        try:
            claimed = await self._redis.set(
                self._names.delivery(trigger, key), b"1", nx=True, ex=window_s
            )
        except RedisError as exc:
            log.warning("replay protection of %s unavailable: %s", trigger, exc)
            return True
        return bool(claimed)

    async def release(self, trigger: str, key: str) -> None:
        try:
            await self._redis.delete(self._names.delivery(trigger, key))
        except RedisError as exc:
            log.warning("could not release a delivery of %s: %s", trigger, exc)
