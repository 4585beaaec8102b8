"""Schedule expressions, as EventBridge Scheduler writes them, and when their ticks fall.

- `rate(5 minutes)`: every fixed duration (`minute`, `hour`, `day` for 1, `minutes`, `hours`,
  `days` above; `second(s)` as our extension, from 1 s), counted from the trigger's anchor,
  the moment it was created: its first tick fires at once, as on AWS. A day is 24 hours,
  daylight saving time or not.
- `cron(0 12 * * ? *)`: router.cron, on the wall clock of the trigger's time zone. A tick
  whose local time does not exist (the hour skipped when daylight saving time starts) is
  skipped; one that exists twice (the hour repeated when it ends) fires once, the first time.
- `at(2026-12-01T09:00:00)`: once, at that local time in the trigger's time zone.

Ticks are whole Unix seconds. Pure functions only: the scheduler (router.scheduler) does the
I/O and `plan` decides, from the shared cursor, which ticks to fire and which were missed.
"""

from __future__ import annotations

import functools
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from router import cron

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
MAX_RATE = 10**6  # of any unit: a schedule is for this millennium
GRACE_MIN_S = 5  # a tick fired this late still counts as on time, at least ...
GRACE_MAX_S = 60  # ... and at most (EventBridge's own precision is a minute)
CatchUp = Literal["latest", "none"]
_RATE = re.compile(r"rate\((\d+)\s+([a-z]+)\)")
_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_CRON = re.compile(r"cron\((.*)\)")


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Rate:
    seconds: int


@dataclass(frozen=True)
class At:
    local: datetime  # naive, in the trigger's time zone


Expression = Rate | cron.Cron | At


@dataclass(frozen=True)
class Schedule:
    expression: Expression
    zone: ZoneInfo

    def next_after(self, after: float, anchor: int) -> int | None:
        """The first tick later than `after` (Unix seconds), or None when there is none.
        `anchor` is where a rate counts from."""
        match self.expression:
            case Rate(seconds):
                if after < anchor:
                    return anchor
                return anchor + (math.floor((after - anchor) / seconds) + 1) * seconds
            case At(local):
                tick = instant(local, self.zone)
                return tick if tick is not None and tick > after else None
            case cron.Cron() as expression:
                return _next_cron(expression, self.zone, after)


def _next_cron(expression: cron.Cron, zone: ZoneInfo, after: float) -> int | None:
    """Cron runs on local wall time. Candidates in a daylight saving gap are skipped; the
    first occurrence of a repeated hour is the one that counts, so a candidate whose first
    occurrence is not after `after` (we are in the repeat) is passed over too."""
    local = datetime.fromtimestamp(after, zone).replace(tzinfo=None)
    while (candidate := expression.next_after(local)) is not None:
        tick = instant(candidate, zone)
        if tick is not None and tick > after:
            return tick
        local = candidate
    return None


def instant(local: datetime, zone: ZoneInfo) -> int | None:
    """Unix seconds of a naive local time (its first occurrence), None if it does not exist."""
    aware = local.replace(tzinfo=zone, fold=0)
    tick = int(aware.timestamp())
    if datetime.fromtimestamp(tick, zone).replace(tzinfo=None) != local:
        return None  # in the gap: the clock jumped over it
    return tick


@functools.lru_cache(maxsize=1024)
def compiled(expression: str, timezone: str) -> Schedule:
    """Parse and check `expression` in `timezone`. Raises ScheduleError saying what is wrong."""
    zone = time_zone(timezone)
    parsed = parse(expression)
    if isinstance(parsed, At) and instant(parsed.local, zone) is None:
        raise ScheduleError(
            f"{parsed.local.isoformat()} does not exist in {timezone} "
            "(the clock skips it when daylight saving time starts)"
        )
    return Schedule(parsed, zone)


def time_zone(name: str) -> ZoneInfo:
    """An IANA time zone. Not `localtime`: that is whatever the host is set to, and replicas
    on different hosts would disagree."""
    if name not in _zone_names() or name == "localtime":
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin"
        )
    return ZoneInfo(name)


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def parse(expression: str) -> Expression:
    if match := _RATE.fullmatch(expression):
        return _rate(int(match[1]), match[2])
    if match := _AT.fullmatch(expression):
        try:
            return At(datetime.fromisoformat(match[1]))
        except ValueError:
            raise ScheduleError(f"{match[1]!r} is not a valid date and time") from None
    if match := _CRON.fullmatch(expression):
        try:
            return cron.parse(match[1])
        except cron.CronError as exc:
            raise ScheduleError(f"{expression}: {exc}") from None
    raise ScheduleError(
        f"{expression!r} is not a schedule expression: use rate(5 minutes), "
        "cron(0 12 * * ? *) or at(2026-12-01T09:00:00)"
    )


def _rate(value: int, unit: str) -> Rate:
    singular = unit.removesuffix("s")
    if singular not in UNITS:
        raise ScheduleError(f"rate unit {unit!r}: use minute(s), hour(s), day(s) or second(s)")
    if not 1 <= value <= MAX_RATE:
        raise ScheduleError(f"rate value {value}: use a whole number from 1 to {MAX_RATE}")
    if (value == 1) != (unit == singular):
        wanted = singular if value == 1 else singular + "s"
        raise ScheduleError(
            f"rate({value} {unit}): write rate({value} {wanted}) (singular for 1, plural above)"
        )
    return Rate(value * UNITS[singular])


@dataclass(frozen=True)
class Plan:
    """What the replica that moves the cursor from its old place to `cursor` does."""

    cursor: int  # the latest tick dealt with
    fire: tuple[int, ...]  # ticks to fire now
    missed: int  # ticks passed over unfired


def plan(
    schedule: Schedule, anchor: int, cursor: int, now: float, catch_up: CatchUp, limit: int = 1000
) -> Plan | None:
    """The ticks after `cursor` up to `now` (at most `limit` of them; the rest next time):
    those still within their grace fire; older ones were missed (every replica, Redis or
    RabbitMQ away). With `catch_up` "latest", when every tick due was missed the latest of
    them fires once, late; with "none", none does. None when no tick is due."""
    due: list[int] = []
    tick = schedule.next_after(cursor, anchor)
    while tick is not None and tick <= now and len(due) < limit:
        due.append(tick)
        tick = schedule.next_after(tick, anchor)
    if not due:
        return None
    following = [*due[1:], tick]
    fire = [t for t, n in zip(due, following, strict=True) if now - t <= grace(t, n)]
    more = tick is not None and tick <= now  # a backlog beyond `limit`: its end decides
    if not fire and catch_up == "latest" and not more:
        fire = [due[-1]]
    return Plan(due[-1], tuple(fire), len(due) - len(fire))


def grace(tick: int, following: int | None) -> float:
    """How late a tick may fire and still count as on time: until the next tick is due, but
    at least GRACE_MIN_S and at most GRACE_MAX_S."""
    if following is None:
        return GRACE_MAX_S
    return min(GRACE_MAX_S, max(GRACE_MIN_S, following - tick))


def tick_id(namespace: str, trigger: str, tick: int) -> str:
    """The event id of one tick, the same whichever replica fires it (and if one fires it
    again after taking over a claim whose publisher died): idempotent functions run it once."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"trigger-router:{namespace}/{trigger}/{tick}"))


def scheduled_event(
    event_id: str, trigger: str, tick: int, region: str, account: str
) -> dict[str, Any]:
    """EventBridge's Scheduled Event, as a Lambda function receives it from a schedule."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.fromtimestamp(tick, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:scheduler:{region}:{account}:schedule/default/{trigger}"],
        "detail": {},
    }
