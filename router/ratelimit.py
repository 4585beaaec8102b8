"""Per-trigger rate limits shared by every replica: a token bucket kept in Redis.

The bucket is updated atomically in a Lua script with Redis' own clock, so replicas with
skewed clocks agree. With Redis away the limit fails open: webhooks keep flowing.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.names import Names
from router.specs import RateLimit

log = logging.getLogger("router.ratelimit")

# KEYS[1] bucket; ARGV rate per second, burst. Returns {allowed, ms until a token is there}.
TOKEN_BUCKET = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or t
tokens = math.min(burst, tokens + math.max(0, t - at) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', t)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, math.ceil((1 - tokens) / rate * 1000)}
"""


class RateLimiter:
    def __init__(self, redis: Redis, names: Names) -> None:
        self._names = names
        self._script = redis.register_script(TOKEN_BUCKET)

    async def retry_after(self, trigger: str, limit: RateLimit) -> float | None:
        """None when the request may pass; else seconds until it would."""
        try:
            allowed, wait_ms = await self._script(
                keys=[self._names.rate_limit(trigger)], args=[limit.per_second, limit.burst]
            )
        except RedisError as exc:
            log.warning(
                "rate limit of %s not checked (%s); letting the request through", trigger, exc
            )
            return None
        return None if int(allowed) else max(0.001, int(wait_ms) / 1000)
