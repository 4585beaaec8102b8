"""Cluster-wide concurrency: each function's slots, leased in Redis by the replicas that run it.

A replica holds a count of leased slots per function, in one Redis hash, with an expiry renewed
every RENEW_S: a replica that dies stops renewing and its slots go back within LEASE_TTL_S. The
count moves in batches (a replica asks for what it runs and has waiting, and keeps what it holds
while it still has events for it), so a busy replica asks Redis nothing per invocation; the
script uses Redis' own clock, so replicas with skewed clocks agree on expiries.

With Redis away the leases fail open: each replica runs up to its per-replica cap, counted in
`router_concurrency_leases_unchecked_total`, until a renewal reaches Redis again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.metrics import Metrics
from router.names import Names

log = logging.getLogger("router.leases")

LEASE_TTL_S = 3.0  # a dead replica's slots come back within this
RENEW_S = 1.0  # how often a replica renews what it holds (and probes Redis while away)

# Per function: KEYS held (hash replica -> slots), wants (hash replica -> slots asked for and
# not granted), expiry (zset replica -> ms). ARGV replica, ttl ms, then per function: hold,
# need, max. Each function's replica holds min(hold, what others leave of max); its unmet need
# is recorded so that holders learn others wait. Returns per function {held, others waiting}.
LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local replica, ttl = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS / 3 do
  local held, wants, expiry = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local hold, need = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local max = tonumber(ARGV[3 * i + 2])
  for _, gone in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now)) do
    redis.call('HDEL', held, gone)
    redis.call('HDEL', wants, gone)
  end
  redis.call('ZREMRANGEBYSCORE', expiry, '-inf', now)
  local others = 0
  local all = redis.call('HGETALL', held)
  for j = 1, #all, 2 do
    if all[j] ~= replica then others = others + tonumber(all[j + 1]) end
  end
  local granted = math.max(0, math.min(hold, max - others))
  local unmet = math.max(0, need - granted)
  if granted > 0 then
    redis.call('HSET', held, replica, granted)
  else
    redis.call('HDEL', held, replica)
  end
  if unmet > 0 then
    redis.call('HSET', wants, replica, unmet)
  else
    redis.call('HDEL', wants, replica)
  end
  if granted > 0 or unmet > 0 then
    redis.call('ZADD', expiry, now + ttl, replica)
  else
    redis.call('ZREM', expiry, replica)
  end
  local waiting = 0
  local asked = redis.call('HGETALL', wants)
  for j = 1, #asked, 2 do
    if asked[j] ~= replica then waiting = waiting + tonumber(asked[j + 1]) end
  end
  for _, key in ipairs({held, wants, expiry}) do redis.call('PEXPIRE', key, ttl * 2) end
  out[i] = {granted, waiting}
end
return out
"""


@dataclass(frozen=True)
class Grant:
    held: int  # slots this replica holds now
    contended: bool  # another replica waits for slots of this function


@dataclass(frozen=True)
class Ask:
    """What a replica asks of one function's slots: to hold `hold` of them (at most `maximum`
    with every replica's counted), and `need` in all (the rest is recorded as waiting)."""

    hold: int
    need: int
    maximum: int


class Holder(Protocol):
    """A function's slots in this replica, as the renewal sees them (router.slots.Slots)."""

    function: str

    def renewal(self) -> Ask | None: ...

    def renewed(self, grant: Grant) -> None: ...

    def resume(self) -> None: ...


def replica_id() -> str:
    """Unique per process, readable in Redis: which host and pid holds the slots."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leases:
    def __init__(
        self, redis: Redis, names: Names, metrics: Metrics, ttl_s: float = LEASE_TTL_S
    ) -> None:
        self.replica = replica_id()
        self.checked = True  # False while Redis is away: slots are not leased, only capped
        self._names = names
        self._metrics = metrics
        self._ttl_ms = int(ttl_s * 1000)
        self._script = redis.register_script(LEASE)
        self._holders: dict[str, Holder] = {}

    def hold(self, holder: Holder) -> None:
        self._holders[holder.function] = holder
        self._metrics.leasing(holder.function)

    def forget(self, function: str) -> None:
        """A deleted function: what this replica held expires with its lease."""
        self._holders.pop(function, None)

    def unchecked(self, function: str) -> None:
        """An invocation admitted without a lease (Redis away)."""
        self._metrics.unchecked(function)

    async def ask(self, function: str, ask: Ask) -> Grant:
        """Hold `ask.hold` slots of `function` (or what is free of them). Raises RedisError,
        after which this replica runs unchecked until a renewal reaches Redis."""
        try:
            (grant,) = await self._call({function: ask})
        except RedisError as exc:
            self._away(exc)
            raise
        return grant

    async def run(self) -> None:
        """Renew what this replica holds, every RENEW_S; while Redis is away, probe it."""
        while True:
            await asyncio.sleep(RENEW_S)
            await self.renew()

    async def renew(self) -> None:
        asks = {
            function: ask
            for function, holder in list(self._holders.items())
            if (ask := holder.renewal()) is not None
        }
        if not asks and self.checked:
            return
        try:
            grants = await self._call(asks) if asks else await self._ping()
        except RedisError as exc:
            self._away(exc)
            return
        back = not self.checked
        self.checked = True
        if back:
            log.warning("Redis is reachable again: concurrency is leased across replicas again")
        for function, grant in zip(asks, grants, strict=True):
            holder = self._holders.get(function)
            if holder is not None:
                holder.renewed(grant)
        if back:
            for holder in list(self._holders.values()):
                holder.resume()

    async def give_back(self) -> None:
        """Shutting down: return every slot held (they would expire anyway)."""
        asks = {function: Ask(0, 0, 1) for function in self._holders}
        self._holders.clear()
        if asks and self.checked:
            try:
                await self._call(asks)
            except RedisError as exc:
                log.warning("could not give back concurrency leases (%s); they expire", exc)

    async def _ping(self) -> list[Grant]:
        await self._script(keys=[], args=[self.replica, self._ttl_ms])
        return []

    async def _call(self, asks: dict[str, Ask]) -> list[Grant]:
        keys: list[str] = []
        args: list[str | int] = [self.replica, self._ttl_ms]
        for function, ask in asks.items():
            keys += self._names.concurrency_keys(function)
            args += [ask.hold, ask.need, ask.maximum]
        result = await self._script(keys=keys, args=args)
        return [Grant(int(held), int(waiting) > 0) for held, waiting in result]

    def _away(self, exc: RedisError) -> None:
        if self.checked:
            log.warning(
                "concurrency leases not checked (%s); each replica runs up to its per-replica"
                " cap until Redis answers again",
                exc,
            )
        self.checked = False
