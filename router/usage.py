"""Pay-per-use accounting: invocations, billed milliseconds and GB-seconds per function,
kept per hour in Redis (shared by all replicas) and summed over any period.

Counts are gathered in memory and added to Redis once a second, so billing costs the hot path
nothing; counts that could not be written are kept for the next try.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from router.names import Names
from router.writebehind import WriteBehind

log = logging.getLogger("router.usage")
FLUSH_S = 1.0
KEEP_S = 400 * 86400  # a little over a year of hourly buckets
HOUR = "%Y%m%d%H"
COUNTERS = ("invocations", "billed_ms", "mb_ms")
Hourly = tuple[str, str]  # (hour, function)


class Usage:
    def __init__(self, redis: Redis, names: Names) -> None:
        self._redis = redis
        self._names = names
        # (hour, function) -> [invocations, billed ms, MB-ms], changed in place: one lookup per
        # call. Counts a write missed are added to those that came since.
        self._pending = WriteBehind[Hourly, list[int]](
            "usage counts", self._write, FLUSH_S, log, merge=_sum
        )
        self._hour_number = -1
        self._hour_label = ""

    def record(self, function: str, billed_ms: int, memory_mb: int) -> None:
        key = (self._hour(), function)
        totals = self._pending.get(key)
        if totals is None:
            totals = [0, 0, 0]
            self._pending.add(key, totals)
        totals[0] += 1
        totals[1] += billed_ms
        totals[2] += billed_ms * memory_mb

    def _hour(self) -> str:
        """The current UTC hour bucket, formatted once an hour rather than once a call."""
        hour = int(time.time() // 3600)
        if hour != self._hour_number:
            self._hour_number = hour
            self._hour_label = datetime.fromtimestamp(hour * 3600, UTC).strftime(HOUR)
        return self._hour_label

    async def run(self) -> None:
        await self._pending.run()

    async def flush(self) -> None:
        await self._pending.flush()

    async def _write(self, batch: Mapping[Hourly, list[int]]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for (hour, function), totals in batch.items():
                for counter, amount in zip(COUNTERS, totals, strict=True):
                    pipe.hincrby(self._names.usage(hour), f"{function}:{counter}", amount)
            for hour in {hour for hour, _ in batch}:
                pipe.expire(self._names.usage(hour), KEEP_S)
            await pipe.execute()

    async def report(self, since: datetime, until: datetime) -> dict[str, Any]:
        """Totals per function over whole hours from `since` to `until` (UTC)."""
        await self.flush()
        hours = _hours(since, until)
        async with self._redis.pipeline(transaction=False) as pipe:
            for hour in hours:
                pipe.hgetall(self._names.usage(hour))
            buckets = await pipe.execute()
        totals: Counter[tuple[str, str]] = Counter()
        for bucket in buckets:
            for field, value in bucket.items():
                function, _, counter = field.decode().rpartition(":")
                totals[(function, counter)] += int(value)
        functions = sorted({function for function, _ in totals})
        rows = [_row(function, totals) for function in functions]
        return {
            "since": _iso(hours[0]),
            "until": until.isoformat(),
            "functions": rows,
            "total": _total(rows),
        }


def _sum(kept: list[int], since: list[int]) -> list[int]:
    return [a + b for a, b in zip(kept, since, strict=True)]


def parse_time(value: str, now: datetime) -> datetime:
    """`24h`, `7d`, `30m` (ago) or an ISO 8601 time (UTC when no zone is given)."""
    units = {"m": 60, "h": 3600, "d": 86400}
    if value[:-1].isdigit() and value[-1:] in units:
        return now - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _hours(since: datetime, until: datetime) -> list[str]:
    start = since.replace(minute=0, second=0, microsecond=0)
    hours = []
    while start <= until:
        hours.append(start.strftime(HOUR))
        start += timedelta(hours=1)
    return hours or [until.strftime(HOUR)]


def _row(function: str, totals: Counter[tuple[str, str]]) -> dict[str, Any]:
    return {
        "function": function,
        "invocations": totals[(function, "invocations")],
        "billed_duration_ms": totals[(function, "billed_ms")],
        "gb_seconds": round(totals[(function, "mb_ms")] / 1000 / 1024, 6),
    }


def _total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "invocations": sum(r["invocations"] for r in rows),
        "billed_duration_ms": sum(r["billed_duration_ms"] for r in rows),
        "gb_seconds": round(sum(r["gb_seconds"] for r in rows), 6),
    }


def _iso(hour: str) -> str:
    return datetime.strptime(hour, HOUR).replace(tzinfo=UTC).isoformat()
