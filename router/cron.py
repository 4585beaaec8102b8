"""Cron expressions as EventBridge Scheduler writes them, evaluated on wall-clock time.

`cron(minutes hours day-of-month month day-of-week year)`: six fields, `?` in exactly one of the
two day fields, and the wildcards AWS documents per field (`, - * /` everywhere but day-of-week,
`? L W` in day-of-month, `? L #` in day-of-week; months JAN-DEC, days SUN-SAT with SUN = 1).
`L`, `W` and `#` mean what they mean in Quartz, whose syntax this is: `L` the last day of the
month (day-of-month) or Saturday (day-of-week), `6L` the month's last Friday, `15W` the weekday
nearest the 15th within its month, `LW` the month's last weekday, `2#1` its first Monday.

Pure: `Cron.next_after` takes and gives naive local times; router.schedules puts them in a
time zone.
"""

from __future__ import annotations

import calendar
import functools
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
LAST_YEAR = 2199


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    wildcards: str
    names: tuple[tuple[str, int], ...] = ()

    def number(self, text: str) -> int:
        value = dict(self.names).get(text.upper()) if self.names else None
        if value is None:
            if not text.isdigit():
                raise CronError(f"{self.name}: {text!r} is not a value")
            value = int(text)
        if not self.low <= value <= self.high:
            raise CronError(f"{self.name}: {value} is outside {self.low}-{self.high}")
        return value


MINUTES = Field("minutes", 0, 59, ",-*/")
HOURS = Field("hours", 0, 23, ",-*/")
DAY_OF_MONTH = Field("day-of-month", 1, 31, ",-*?/LW")
MONTH = Field("month", 1, 12, ",-*/", tuple(zip(MONTHS, range(1, 13), strict=True)))
DAY_OF_WEEK = Field("day-of-week", 1, 7, ",-*?L#", tuple(zip(DAYS, range(1, 8), strict=True)))
YEAR = Field("year", 1970, LAST_YEAR, ",-*/")
FIELDS = (MINUTES, HOURS, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR)


@dataclass(frozen=True)
class Days:
    """Which days of a month match: day-of-month's rule or day-of-week's (the other is `?`)."""

    of_month: frozenset[int] = frozenset()
    last: bool = False  # L
    last_weekday: bool = False  # LW
    nearest_weekday: int = 0  # 15W
    of_week: frozenset[int] = frozenset()  # 1 = Sunday ... 7 = Saturday
    last_of_week: int = 0  # 6L: the month's last Friday
    nth_of_week: tuple[int, int] = (0, 0)  # 2#1: (Monday, first)


@dataclass(frozen=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    days: Days

    def next_after(self, start: datetime) -> datetime | None:
        """The first matching minute after `start` (naive wall time), or None (none left
        before the year field's end, 2199)."""
        t = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while t.year <= LAST_YEAR:
            if t.year not in self.years:
                year = _following(self.years, t.year)
                if year is None:
                    return None
                t = datetime(year, 1, 1)
            elif t.month not in self.months:
                month = _following(self.months, t.month)
                t = datetime(t.year, month, 1) if month else datetime(t.year + 1, 1, 1)
            elif t.day not in (days := days_of(self.days, t.year, t.month)):
                day = _following(days, t.day)
                t = datetime(t.year, t.month, day) if day else _next_month(t)
            elif t.hour not in self.hours:
                hour = _following(self.hours, t.hour)
                t = t.replace(hour=hour, minute=0) if hour is not None else _next_day(t)
            elif t.minute not in self.minutes:
                minute = _following(self.minutes, t.minute)
                t = t.replace(minute=minute) if minute is not None else _next_hour(t)
            else:
                return t
        return None


def _following(values: tuple[int, ...], after: int) -> int | None:
    """The smallest of the sorted `values` above `after`."""
    at = bisect_right(values, after)
    return values[at] if at < len(values) else None


def _next_month(t: datetime) -> datetime:
    return datetime(t.year + t.month // 12, t.month % 12 + 1, 1)


def _next_day(t: datetime) -> datetime:
    return datetime(t.year, t.month, t.day) + timedelta(days=1)


def _next_hour(t: datetime) -> datetime:
    return t.replace(minute=0) + timedelta(hours=1)


def weekday(year: int, month: int, day: int) -> int:
    """AWS's day-of-week number: 1 = Sunday ... 7 = Saturday."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


@functools.lru_cache(maxsize=4096)
def days_of(rule: Days, year: int, month: int) -> tuple[int, ...]:
    """The days of the month `rule` matches, sorted."""
    length = calendar.monthrange(year, month)[1]
    found = {d for d in rule.of_month if d <= length}
    if rule.last:
        found.add(length)
    if rule.last_weekday:
        found.add(_nearest_weekday(year, month, length, length))
    if rule.nearest_weekday and rule.nearest_weekday <= length:
        found.add(_nearest_weekday(year, month, rule.nearest_weekday, length))
    every = range(1, length + 1)
    found.update(d for d in every if weekday(year, month, d) in rule.of_week)
    if rule.last_of_week:
        found.add(max(d for d in every if weekday(year, month, d) == rule.last_of_week))
    day_of_week, nth = rule.nth_of_week
    if nth:
        matching = [d for d in every if weekday(year, month, d) == day_of_week]
        found.update(matching[nth - 1 : nth])
    return tuple(sorted(found))


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    """Quartz's `W`: the weekday nearest `day`, never leaving the month (a Saturday the 1st
    gives Monday the 3rd; a Sunday the last gives the Friday before)."""
    match weekday(year, month, day):
        case 7:  # Saturday
            return day - 1 if day > 1 else day + 2
        case 1:  # Sunday
            return day + 1 if day < length else day - 2
    return day


def parse(fields: str) -> Cron:
    """The inside of `cron(...)`. Raises CronError naming the field at fault."""
    parts = fields.split()
    if len(parts) != 6:
        raise CronError(
            f"cron takes 6 fields (minutes hours day-of-month month day-of-week year), "
            f"not {len(parts)}"
        )
    minutes, hours, dom, month, dow, year = parts
    for field, text in zip(FIELDS, parts, strict=True):
        _check_wildcards(field, text)
    if (dom == "?") == (dow == "?"):
        raise CronError(
            "one of day-of-month and day-of-week must be '?' and the other not "
            "(e.g. cron(0 12 * * ? *) or cron(0 9 ? * MON-FRI *))"
        )
    days = _day_of_week(dow) if dom == "?" else _day_of_month(dom)
    return Cron(
        _sorted(_list(MINUTES, minutes)),
        _sorted(_list(HOURS, hours)),
        _sorted(_list(MONTH, month)),
        _sorted(_list(YEAR, year)),
        days,
    )


def _check_wildcards(field: Field, text: str) -> None:
    for char in set(re.sub(r"[A-Za-z0-9]", "", text)):
        if char not in field.wildcards:
            allowed = " ".join(field.wildcards)
            raise CronError(f"{field.name}: {char!r} is not allowed here (only {allowed})")
    if "?" in text and text != "?":
        raise CronError(f"{field.name}: '?' stands alone")


def _sorted(values: set[int]) -> tuple[int, ...]:
    return tuple(sorted(values))


def _list(field: Field, text: str) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        values |= _item(field, item)
    return values


def _item(field: Field, item: str) -> set[int]:
    """`*`, `5`, `1-5`, `1/10`, `*/10` or `10-40/5`; a range may wrap (`FRI-MON`, `22-2`)."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise CronError(f"{field.name}: the step in {item!r} must be a whole number from 1")
        step = int(step_text)
    if base == "*":
        low, high = field.low, field.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = field.number(first), field.number(last)
    else:
        low = field.number(base)
        high = field.high if slash else low
    span = list(range(low, high + 1))
    if low > high:  # wraps past the field's end
        span = list(range(low, field.high + 1)) + list(range(field.low, high + 1))
    return set(span[::step])


def _day_of_month(text: str) -> Days:
    if text in ("L", "LW"):
        return Days(last=text == "L", last_weekday=text == "LW")
    if re.fullmatch(r"[0-9]+W", text):
        return Days(nearest_weekday=DAY_OF_MONTH.number(text[:-1]))
    _stands_alone(DAY_OF_MONTH, text, "LW")
    return Days(of_month=frozenset(_list(DAY_OF_MONTH, text)))


def _day_of_week(text: str) -> Days:
    if text == "L":
        return Days(of_week=frozenset({7}))  # AWS: the last day of the week, Saturday
    if re.fullmatch(r"[0-9A-Za-z]+L", text):
        return Days(last_of_week=DAY_OF_WEEK.number(text[:-1]))
    if "#" in text:
        day, _, nth = text.partition("#")
        if "," in text:
            raise CronError("day-of-week: with '#' the field holds one expression (2#1)")
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise CronError(f"day-of-week: {text!r} needs an occurrence from 1 to 5 after '#'")
        return Days(nth_of_week=(DAY_OF_WEEK.number(day), int(nth)))
    _stands_alone(DAY_OF_WEEK, text, "L")
    return Days(of_week=frozenset(_list(DAY_OF_WEEK, text)))


def _stands_alone(field: Field, text: str, letters: str) -> None:
    """`L` and `W` forms are whole fields: not in lists or ranges (Quartz refuses them too)."""
    bare = re.sub("|".join(n for n, _ in field.names) or "^$", "", text.upper())
    if any(letter in bare for letter in letters):
        raise CronError(
            f"{field.name}: {text!r}: 'L', 'W' and '#' forms stand alone, not in lists or ranges"
        )
