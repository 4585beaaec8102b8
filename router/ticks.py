"""The ledger of schedule ticks in Redis: which replica fires which tick, exactly once.

Per trigger, one hash (`Names.schedule`): `anchor`, where a rate counts from; `cursor`, the
latest tick claimed or passed over; `t:{tick}`, the lease of a claimed tick until RabbitMQ has
confirmed its event. A replica claims by moving the cursor from the value it read (a
compare-and-set in one script), so of replicas racing for the same ticks exactly one wins, and
no tick at or below the cursor is ever claimed again. A replica that dies between its claim and
the confirm leaves a lease that runs out; another replica takes the tick over (`overdue`) and
publishes it again, under the same event id. Leases are judged on Redis's clock, so replicas'
clocks need not agree for that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from redis.asyncio import Redis

from router.names import Names
from router.schedules import Plan

# A new or changed schedule counts from now: its anchor, and a cursor just before it (never
# moved back: that could let a tick be claimed twice).
START = """
local cursor = tonumber(redis.call('HGET', KEYS[1], 'cursor'))
local start = tonumber(ARGV[1]) - 1
redis.call('HSET', KEYS[1], 'anchor', ARGV[1])
if cursor == nil or cursor < start then redis.call('HSET', KEYS[1], 'cursor', start) end
return 1
"""
# Anchor and cursor, made as START makes them if Redis lost them.
STATE = """
local anchor = redis.call('HGET', KEYS[1], 'anchor')
if not anchor then
  anchor = ARGV[1]
  redis.call('HSET', KEYS[1], 'anchor', anchor)
end
local cursor = redis.call('HGET', KEYS[1], 'cursor')
if not cursor then
  cursor = tostring(tonumber(ARGV[1]) - 1)
  redis.call('HSET', KEYS[1], 'cursor', cursor)
end
return {anchor, cursor}
"""
# Claim: move the cursor from ARGV[1] to ARGV[2] and lease the ticks to fire (ARGV[4:]) for
# ARGV[3] seconds. Nil when claimed; otherwise the anchor and cursor as they are ('' if gone).
ADVANCE = """
local cursor = redis.call('HGET', KEYS[1], 'cursor')
if cursor ~= ARGV[1] then
  return {redis.call('HGET', KEYS[1], 'anchor') or '', cursor or ''}
end
local now = redis.call('TIME')
local expiry = tonumber(now[1]) + tonumber(now[2]) / 1e6 + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'cursor', ARGV[2])
for i = 4, #ARGV do redis.call('HSET', KEYS[1], 't:' .. ARGV[i], expiry) end
return nil
"""
# Take over the ticks whose lease ran out (lease them again for ARGV[1] seconds).
TAKEOVER = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1e6
local fields = redis.call('HGETALL', KEYS[1])
local taken = {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 't:' and tonumber(fields[i + 1]) <= now then
    redis.call('HSET', KEYS[1], fields[i], now + tonumber(ARGV[1]))
    taken[#taken + 1] = string.sub(fields[i], 3)
  end
end
return taken
"""
# A publish that failed: its lease ends now, so the next sweep retries it.
RELEASE = """
if redis.call('HEXISTS', KEYS[1], 't:' .. ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 't:' .. ARGV[1], 0)
end
return 1
"""


class TickLedger:
    def __init__(self, redis: Redis, names: Names, lease_s: float) -> None:
        self._redis = redis
        self._names = names
        self.lease_s = lease_s
        self._start = redis.register_script(START)
        self._state = redis.register_script(STATE)
        self._advance = redis.register_script(ADVANCE)
        self._takeover = redis.register_script(TAKEOVER)
        self._release = redis.register_script(RELEASE)

    async def start(self, trigger: str, now: float) -> None:
        """A schedule trigger was created, or its timing changed: count from `now`."""
        await self._start(keys=[self._names.schedule(trigger)], args=[math.ceil(now)])

    async def forget(self, trigger: str) -> None:
        await self._redis.delete(self._names.schedule(trigger))

    async def state(self, triggers: Sequence[str], now: float) -> dict[str, tuple[int, int]]:
        """Each trigger's (anchor, cursor)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for trigger in triggers:
                await self._state(
                    keys=[self._names.schedule(trigger)], args=[math.ceil(now)], client=pipe
                )
            answers = await pipe.execute()
        return {t: (int(a), int(c)) for t, (a, c) in zip(triggers, answers, strict=True)}

    async def advance(self, trigger: str, expected: int, plan: Plan) -> tuple[int, int] | None:
        """Claim `plan` if the cursor is still `expected`: None when claimed, else the
        (anchor, cursor) another replica or a change left ((-1, -1) when they are gone)."""
        args = [expected, plan.cursor, self.lease_s, *plan.fire]
        found = await self._advance(keys=[self._names.schedule(trigger)], args=args)
        if found is None:
            return None
        anchor, cursor = found
        return (int(anchor), int(cursor)) if anchor and cursor else (-1, -1)

    async def done(self, trigger: str, tick: int) -> None:
        await self._redis.hdel(self._names.schedule(trigger), f"t:{tick}")

    async def release(self, trigger: str, tick: int) -> None:
        await self._release(keys=[self._names.schedule(trigger)], args=[tick])

    async def overdue(self, triggers: Sequence[str]) -> dict[str, list[int]]:
        """Claimed ticks whose publisher did not confirm within its lease, now ours."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for trigger in triggers:
                await self._takeover(
                    keys=[self._names.schedule(trigger)], args=[self.lease_s], client=pipe
                )
            answers = await pipe.execute()
        return {t: [int(x) for x in ticks] for t, ticks in zip(triggers, answers, strict=True)}
