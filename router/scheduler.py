"""The loop of schedule triggers: every replica runs it, and each tick fires on exactly one.

It sleeps until the next tick falls due (or a registry change wakes it), claims the due ticks
in the tick ledger (router.ticks: one replica wins each claim) and queues each tick's event on
the function's queue, as an async webhook does, so retries and the dead-letter queue apply.
A replica that dies after its claim leaves a lease that runs out; any replica's sweep then
takes the tick over. Ticks are claimed only while RabbitMQ is connected: those due meanwhile
wait, and then count as missed or fire as the trigger's `catch_up` says, like ticks due while
every replica was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router import schedules
from router.amqp import Broker, BrokerError
from router.enqueue import Enqueuer
from router.metrics import Metrics
from router.names import Names
from router.registry import Registry, Snapshot
from router.schedules import Plan, Schedule
from router.specs import ScheduleTrigger
from router.ticks import TickLedger

log = logging.getLogger("router.scheduler")
SWEEP_S = 2.0  # how often claimed ticks whose publisher went quiet are looked for
IDLE_S = 60.0  # the longest sleep; a registry change wakes the loop anyway
RETRY_S = 1.0  # while Redis or RabbitMQ is away
LEASE_MARGIN_S = 5.0  # a claim outlives the publish timeout by this much before a takeover
ACCOUNT = "000000000000"  # the account of the router's ARNs (router.context)


def ledger(redis: Redis, names: Names, publish_timeout_s: float) -> TickLedger:
    return TickLedger(redis, names, publish_timeout_s + LEASE_MARGIN_S)


@dataclass
class Known:
    """One schedule trigger as this replica last saw it."""

    trigger: ScheduleTrigger
    schedule: Schedule
    anchor: int
    cursor: int  # the ledger's, as last read; other replicas move it meanwhile
    _due: tuple[int, int, int | None] = (0, -1, None)  # (anchor, cursor, the tick after)

    def due(self) -> int | None:
        """The first tick after the cursor (remembered: a cron that matches rarely, or never,
        takes milliseconds to search)."""
        anchor, cursor, tick = self._due
        if (anchor, cursor) != (self.anchor, self.cursor):
            tick = self.schedule.next_after(self.cursor, self.anchor)
            self._due = (self.anchor, self.cursor, tick)
        return tick


class Scheduler:
    def __init__(
        self,
        registry: Registry,
        ticks: TickLedger,
        ingress: Enqueuer,
        broker: Broker,
        metrics: Metrics,
        names: Names,
    ) -> None:
        self._registry = registry
        self._ticks = ticks
        self._ingress = ingress
        self._broker = broker
        self._metrics = metrics
        self._namespace = names.namespace
        self._region = os.environ.get("AWS_REGION", "local")
        self._known: dict[str, Known] = {}
        self._changed = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._swept_at = 0.0

    async def changed(self, snapshot: Snapshot) -> None:
        """A registry listener: look at the triggers again now."""
        self._changed.set()

    async def run(self) -> None:
        try:
            while True:
                self._changed.clear()
                try:
                    delay = await self._pass(time.time())
                except RedisError as exc:
                    log.warning("schedule triggers wait for Redis: %s", exc)
                    delay = RETRY_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay)
        finally:
            for task in self._sending:
                task.cancel()  # its claim's lease runs out and another replica takes it over

    async def _pass(self, now: float) -> float:
        """Claim and fire what is due; returns how long to sleep."""
        await self._follow(self._schedule_triggers(), now)
        if not self._known:
            return IDLE_S
        if not self._broker.connected:
            return RETRY_S
        wake = now + IDLE_S
        for name, known in self._known.items():
            due = known.due()
            if due is not None and due <= now:
                await self._claim(name, known, now)
                due = known.due()
            if due is not None:
                wake = min(wake, due)
        if now >= self._swept_at + SWEEP_S:
            self._swept_at = now
            await self._sweep()
        return max(0.0, min(wake, self._swept_at + SWEEP_S) - time.time())

    def _schedule_triggers(self) -> dict[str, ScheduleTrigger]:
        snapshot = self._registry.snapshot
        return {
            name: trigger
            for name, trigger in snapshot.triggers.items()
            if isinstance(trigger, ScheduleTrigger) and snapshot.routing(trigger.function)
        }

    async def _follow(self, triggers: dict[str, ScheduleTrigger], now: float) -> None:
        """Forget triggers that went; read the ledger of new and changed ones."""
        for name in self._known.keys() - triggers.keys():
            del self._known[name]
        fresh = [
            n for n, t in triggers.items() if n not in self._known or t != self._known[n].trigger
        ]
        if not fresh:
            return
        states = await self._ticks.state(fresh, now)
        for name in fresh:
            trigger = triggers[name]
            schedule = schedules.compiled(trigger.schedule, trigger.timezone)
            self._known[name] = Known(trigger, schedule, *states[name])
            self._metrics.schedule_known(name)

    def _changed_trigger(self, name: str, trigger: ScheduleTrigger) -> bool:
        known = self._known.get(name)
        return known is None or known.trigger != trigger

    async def _claim(self, name: str, known: Known, now: float) -> None:
        """Move the ledger's cursor over the due ticks, unless another replica did first."""
        for _ in range(5):  # each lost race moves our cursor on; a few are plenty
            plan = schedules.plan(
                known.schedule, known.anchor, known.cursor, now, known.trigger.catch_up
            )
            if plan is None:
                return
            found = await self._ticks.advance(name, known.cursor, plan)
            if found is None:
                known.cursor = plan.cursor
                self._fire(name, plan)
                return
            if found[1] < 0:  # the ledger lost it (Redis emptied): start again from now
                found = (await self._ticks.state([name], now))[name]
            known.anchor, known.cursor = found

    def _fire(self, name: str, plan: Plan) -> None:
        if plan.missed:
            self._metrics.ticks_lost(name, plan.missed)
            log.warning("schedule %s missed %d ticks", name, plan.missed)
        for tick in plan.fire:
            self._send(name, tick)

    async def _sweep(self) -> None:
        for name, ticks in (await self._ticks.overdue(list(self._known))).items():
            for tick in ticks:
                log.warning(
                    "schedule %s: tick %d was claimed, never queued: taking over", name, tick
                )
                self._send(name, tick)

    def _send(self, name: str, tick: int) -> None:
        task = asyncio.create_task(self._queue(name, tick), name=f"schedule {name} {tick}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _queue(self, name: str, tick: int) -> None:
        """Queue one tick's event (confirmed by RabbitMQ), then close its claim. A refused
        publish gives the claim back at once, for the next sweep."""
        snapshot = self._registry.snapshot
        trigger = snapshot.triggers.get(name)
        # `fn`, `fn:7` or `fn:alias`: a weighted alias draws its version for each tick
        target = snapshot.resolve(trigger.function) if trigger else None
        try:
            if not isinstance(trigger, ScheduleTrigger) or target is None:
                await self._ticks.done(name, tick)  # deleted since the claim
                return
            event_id = schedules.tick_id(self._namespace, name, tick)
            event = trigger.input
            if event is None:
                event = schedules.scheduled_event(event_id, name, tick, self._region, ACCOUNT)
            try:
                await self._ingress.enqueue(target.function, target.version, event, event_id, name)
            except BrokerError as exc:
                log.warning("schedule %s: tick %d not queued (%s); retrying", name, tick, exc)
                await self._ticks.release(name, tick)
                return
            self._metrics.tick_fired(name, max(0.0, time.time() - tick))
            await self._ticks.done(name, tick)
        except RedisError as exc:  # the lease runs out: the tick is retried, or sent again
            log.warning("schedule %s: tick %d: Redis away (%s)", name, tick, exc)
