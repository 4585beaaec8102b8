"""A function's concurrency slots in this replica, shared by the pools of all its versions.

`concurrency.max` holds across replicas: the slots a replica runs on are leased in Redis
(router.leases), in batches. A replica asks for what it runs and has waiting, keeps what it
holds while events still wait for it (no Redis call per invocation), gives back a slot it no
longer uses after LINGER_S, and, when another replica waits, gives one back at its next release
so that no replica's events wait for ever. `concurrency.per_replica` (default `max`) caps one
replica; with Redis away it is the only limit (fail open).

Over the limit a sync caller is throttled (after asking Redis for a slot, if the cap allows one)
and a queued event waits in line, first come first served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from router.leases import Ask, Grant, Leases
from router.metrics import Metrics

if TYPE_CHECKING:
    from router.pool import Pool

POLL_S = 0.05  # how often a replica whose events wait asks for slots again
LINGER_S = 0.05  # how long a leased slot unused is kept for the next call
QUIET_S = 0.1  # after giving a slot to a waiting replica, ask for none for this long
YIELD_EVERY_S = 1.0  # while other replicas wait, give one of them a slot this often


class Throttled(Exception):
    """The function is running `concurrency.max` invocations already."""


class TurnedAway(Exception):
    """The replica is shutting down: a call still waiting for a slot will not get one."""


class Slots:
    def __init__(
        self,
        function: str,
        maximum: int,
        metrics: Metrics,
        leases: Leases | None = None,
        per_replica: int | None = None,
    ) -> None:
        self.function = function
        self.maximum = maximum  # across replicas when leased
        self.cap = per_replica or maximum  # in this replica
        self.in_flight = 0
        self.held = 0  # slots leased in Redis
        self.pools: list[Pool] = []
        self._waiters: deque[asyncio.Future[None]] = deque()
        # Sync callers waiting for one lease round, by the number of rounds begun before them.
        self._impatient: dict[asyncio.Future[None], int] = {}
        self._leases = leases
        self._told = 0  # what Redis last said we hold
        self._unmet = False  # our last ask left some of our need waiting (recorded in Redis)
        self._rounds = 0
        self._asking: asyncio.Task[None] | None = None
        self._lingering: asyncio.TimerHandle | None = None
        self._returning = False  # the linger is over: give back what is still unused
        self._busiest = 0  # the most slots needed at once since the linger began
        self._yield = False  # another replica waits: give it our next released slot
        self._quiet_until = 0.0
        self._yielded_at = float("-inf")
        self._metrics = metrics
        self._watched = False
        # Invocations running now are the slots taken, read when Prometheus scrapes.
        metrics.sampled(metrics.concurrent, lambda: self.in_flight, function)
        if leases is not None:
            leases.hold(self)
            metrics.sampled(metrics.leases_held, lambda: self.held, function)

    @property
    def leased(self) -> bool:
        """Whether slots come from leases now (not without Redis, nor in the bench baseline)."""
        return self._leases is not None and self._leases.checked

    def capacity(self) -> int:
        return min(self.held, self.cap) if self.leased else self.cap

    def resize(self, maximum: int, per_replica: int | None = None) -> None:
        self.maximum = maximum
        self.cap = per_replica or maximum
        self._hand_over()  # a raised limit lets waiters in at once
        self._kick()

    def take(self) -> bool:
        """Take a free slot if there is one and nobody waits for it (the common case: no
        coroutine, no Redis call, no future)."""
        if self.in_flight < self.capacity() and not self._waiters:
            self._admit()
            return True
        return False

    async def acquire(self, wait: bool) -> None:
        """Take a slot; over the limit wait in line, or (`wait=False`) raise Throttled once
        Redis has no lease to give either."""
        if self.take():
            return
        if not wait and not self._may_ask():
            raise Throttled(self.function)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._busiest = max(self._busiest, self.in_flight + len(self._waiters))
        if not wait:
            self._impatient[waiter] = self._rounds
        self._kick()
        try:
            await waiter  # `_hand_over` counted our slot already
        except asyncio.CancelledError:
            self._impatient.pop(waiter, None)
            if waiter.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            else:
                self.release()  # given a slot and cancelled before using it: pass it on
            raise

    def _may_ask(self) -> bool:
        """Whether a sync caller may wait for a lease round: only when leased, under the cap,
        and with no queued event ahead of it (those would take the slots first)."""
        patient = len(self._waiters) - len(self._impatient)
        return self.leased and patient == 0 and self.in_flight + len(self._waiters) < self.cap

    def turn_away(self) -> None:
        """Shutting down: callers waiting for a slot get TurnedAway (their prefetched messages
        go back to the queue at once instead of running in the grace period)."""
        waiters, self._waiters = self._waiters, deque()
        self._impatient.clear()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(TurnedAway(self.function))

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def release(self) -> None:
        self.in_flight -= 1
        if self._yield and self.leased and self.held > 0:
            self._give_one()
        self._hand_over()
        self._linger_if_spare()

    def stop(self) -> None:
        """No more lease rounds (shutting down, or the function is gone)."""
        if self._lingering is not None:
            self._lingering.cancel()
        if self._asking is not None:
            self._asking.cancel()

    def close(self) -> None:
        """The function left the registry: what this replica held expires with its lease."""
        self.stop()
        if self._leases is not None:
            self._leases.forget(self.function)

    # Leases: what the renewal asks, and the rounds asked between renewals.

    def renewal(self) -> Ask | None:
        """What to renew (None: nothing held or wanted, or a round under way renews it)."""
        if self._asking is not None:
            return None
        need = self._need()
        hold = self.held if self.leased else min(self.in_flight, self.cap)
        if hold == 0 and need == 0 and not self._unmet:
            return None
        return Ask(hold, need, self.maximum)

    def renewed(self, grant: Grant) -> None:
        if self._asking is not None:
            return  # a round began meanwhile: its answer is newer
        self.held = self._told = grant.held  # less, if our leases lapsed and others took them
        self._consider_yielding(grant)
        self._linger_if_spare()  # granted for runs that ended while the renewal was under way

    def resume(self) -> None:
        """Redis is back: lease what runs and waits."""
        self._hand_over()
        self._kick()

    def _need(self) -> int:
        return min(self.cap, self.in_flight + len(self._waiters))

    def _consider_yielding(self, grant: Grant) -> None:
        """Another replica waits while we hand our slots on to our own waiting events: give it
        one, at most once per YIELD_EVERY_S (so that slots rotate, not bounce)."""
        if not (grant.contended and self._waiters and self.held > 0):
            return
        now = asyncio.get_running_loop().time()
        if now - self._yielded_at >= YIELD_EVERY_S:
            self._yielded_at = now
            self._yield = True

    def _give_one(self) -> None:
        """Another replica waits: return a released slot instead of reusing it, and ask for
        none for a moment, so that one of them gets it."""
        self._yield = False
        self.held -= 1
        self._quiet_until = asyncio.get_running_loop().time() + QUIET_S
        self._kick()

    def _linger_if_spare(self) -> None:
        """Give back leased slots unused for LINGER_S (until then the next call may want
        them)."""
        if self.held > self.in_flight + len(self._waiters) and self._lingering is None:
            loop = asyncio.get_running_loop()
            self._lingering = loop.call_later(LINGER_S, self._linger_over)

    def _linger_over(self) -> None:
        self._lingering = None
        self._returning = True
        self._kick()

    def _kick(self) -> None:
        """Start asking Redis, unless a round is under way or there is nothing to ask (an event
        waiting while every held slot runs: it gets the next one released here)."""
        if self._asking is None and self.leased and self._has_news():
            self._asking = asyncio.ensure_future(self._ask_rounds())

    def _has_news(self) -> bool:
        return self._need() > self.held or self.held != self._told or self._returning or self._unmet

    async def _ask_rounds(self) -> None:
        """Ask Redis until what this replica holds matches what it needs (or nothing is free:
        then again every POLL_S while events wait)."""
        loop, leases = asyncio.get_running_loop(), self._leases
        try:
            while leases is not None and leases.checked:
                quiet_s = self._quiet_until - loop.time()
                if quiet_s > 0 and self._need() > self.held and self.held == self._told:
                    await asyncio.sleep(quiet_s)
                    continue
                ask = self._next_ask(quiet_s > 0)
                if ask is None:
                    self._linger_if_spare()  # runs may have ended while we asked
                    return
                self._rounds += 1
                round_ = self._rounds
                self.held = min(self.held, ask.hold)  # never run on slots being given back
                try:
                    grant = await leases.ask(self.function, ask)
                except RedisError:
                    self._hand_over()  # unchecked now: up to the per-replica cap
                    return
                self.held = self._told = grant.held
                self._unmet = ask.need > grant.held
                self._consider_yielding(grant)
                self._hand_over()
                self._refuse_impatient(round_)
                if self._unmet:
                    await asyncio.sleep(POLL_S)
        finally:
            self._asking = None
            self._refuse_impatient(self._rounds + 1)  # none left waiting on a round not asked

    def _next_ask(self, quiet: bool) -> Ask | None:
        need = self._need()
        if need > self.held and not quiet:
            return Ask(need, need, self.maximum)
        if self._returning:
            # Only slots unused for the whole linger go back: a drain whose need dips for a
            # moment between deliveries keeps them.
            self._returning = False
            self.held = min(self.held, max(need, self.in_flight, self._busiest))
            self._busiest = need
        if self.held != self._told or (self._unmet and need <= self.held):
            return Ask(self.held, need, self.maximum)
        return None

    def _admit(self) -> None:
        self.in_flight += 1
        if self.in_flight > self._busiest:
            self._busiest = self.in_flight
        if self._leases is not None and not self._leases.checked:
            self._leases.unchecked(self.function)

    def _hand_over(self) -> None:
        """Give free slots to waiters, first come first served."""
        capacity = self.capacity()
        while self._waiters and self.in_flight < capacity:
            waiter = self._waiters.popleft()
            self._impatient.pop(waiter, None)
            if not waiter.done():
                self._admit()
                waiter.set_result(None)

    def _refuse_impatient(self, round_: int) -> None:
        """Sync callers counted in a round that gave them nothing: throttled."""
        for waiter, before in list(self._impatient.items()):
            if before < round_:
                del self._impatient[waiter]
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if not waiter.done():
                    waiter.set_exception(Throttled(self.function))

    def watch_workers(self) -> None:
        """`router_workers{function}` sums the pools of every version, read when scraped. Set
        once an environment exists, so functions that never had one show none."""
        if self._watched:
            return
        self._watched = True
        workers, sampled = self._metrics.workers, self._metrics.sampled
        sampled(workers, lambda: sum(len(p.busy) for p in self.pools), self.function, "busy")
        sampled(workers, lambda: sum(len(p.idle) for p in self.pools), self.function, "idle")
