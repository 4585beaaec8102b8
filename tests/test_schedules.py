"""Schedule expressions (EventBridge Scheduler's syntax) and the tick plan: pure, table-driven."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from router import cron, schedules
from router.schedules import Plan, ScheduleError


def utc(text: str) -> int:
    """Unix seconds of a UTC time written without its zone."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def local(tick: int, zone: str) -> str:
    return datetime.fromtimestamp(tick, ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M %Z")


def ticks(expression: str, zone: str, after: int, count: int, anchor: int = 0) -> list[int]:
    schedule = schedules.compiled(expression, zone)
    found: list[int] = []
    tick: int | None = after
    while len(found) < count:
        assert tick is not None
        tick = schedule.next_after(tick, anchor)
        if tick is None:
            break
        found.append(tick)
    return found


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(1 hour)", 3600),
        ("rate(12 hours)", 43200),
        ("rate(1 day)", 86400),
        ("rate(7 days)", 604800),
        ("rate(1 second)", 1),  # the extension for tests and fast jobs
        ("rate(30 seconds)", 30),
    ],
)
def test_rates(expression: str, seconds: int) -> None:
    assert schedules.parse(expression) == schedules.Rate(seconds)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("rate(1 minutes)", "rate(1 minute)"),  # EventBridge: singular for 1 ...
        ("rate(5 minute)", "rate(5 minutes)"),  # ... plural above
        ("rate(0 minutes)", "from 1"),
        ("rate(2 weeks)", "unit 'weeks'"),
        ("rate(1.5 hours)", "not a schedule expression"),
        ("rate(-1 minute)", "not a schedule expression"),
        ("rate(5minutes)", "not a schedule expression"),
        ("rate(5 Minutes)", "not a schedule expression"),
        ("every 5 minutes", "not a schedule expression"),
        ("rate(5 minutes", "not a schedule expression"),
        ("at(2026-12-01 09:00:00)", "not a schedule expression"),
        ("at(2026-12-01T09:00)", "not a schedule expression"),
        ("at(2026-02-30T09:00:00)", "not a valid date"),
        ("at(2026-12-01T25:00:00)", "not a valid date"),
        ("cron(0 12 * * ?)", "6 fields"),
        ("cron(0 12 * * * *)", "must be '?'"),  # * in both day fields
        ("cron(0 12 ? * ? *)", "must be '?'"),  # ? in both
        ("cron(0 12 1 * MON *)", "must be '?'"),  # values in both
        ("cron(60 12 * * ? *)", "minutes: 60 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours: 24 is outside 0-23"),
        ("cron(0 12 0 * ? *)", "day-of-month: 0 is outside 1-31"),
        ("cron(0 12 * 13 ? *)", "month: 13 is outside 1-12"),
        ("cron(0 12 ? * 8 *)", "day-of-week: 8 is outside 1-7"),
        ("cron(0 12 * * ? 1969)", "year: 1969 is outside 1970-2199"),
        ("cron(0 12 * * ? 2200)", "year: 2200 is outside"),
        ("cron(0 12 * JANUARY ? *)", "month: 'JANUARY' is not a value"),
        ("cron(0 12 ? * */2 *)", "day-of-week: '/' is not allowed"),
        ("cron(0 L * * ? *)", "hours: 'L' is not a value"),
        ("cron(0 12 * * ? L)", "year: 'L' is not a value"),
        ("cron(0 12 # * ? *)", "day-of-month: '#' is not allowed"),
        ("cron(0 12 ? * 3#1,6#3 *)", "one expression"),  # AWS's own example of an invalid one
        ("cron(0 12 ? * 2#6 *)", "from 1 to 5"),
        ("cron(0 12 1,L * ? *)", "stand alone"),
        ("cron(0 12 L-2 * ? *)", "stand alone"),
        ("cron(0 12 ? * 2,6L *)", "stand alone"),
        ("cron(0 12 15W,20 * ? *)", "stand alone"),
        ("cron(0/0 12 * * ? *)", "step"),
        ("cron(0 12 ?/2 * ? *)", "'?' stands alone"),
        ("cron(0 12 1-, * ? *)", "is not a value"),
    ],
)
def test_invalid_expressions(expression: str, says: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        schedules.compiled(expression, "UTC")
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 12 * * ? *)", "2026-06-01T12:00", ["2026-06-02T12:00", "2026-06-03T12:00"]),
        ("cron(15 10 * * ? *)", "2026-06-01T10:14", ["2026-06-01T10:15", "2026-06-02T10:15"]),
        ("cron(0/15 * * * ? *)", "2026-06-01T10:50", ["2026-06-01T11:00", "2026-06-01T11:15"]),
        ("cron(1/10 * * * ? *)", "2026-06-01T10:51", ["2026-06-01T11:01", "2026-06-01T11:11"]),
        ("cron(*/20 9 * * ? *)", "2026-06-01T09:40", ["2026-06-02T09:00", "2026-06-02T09:20"]),
        ("cron(10-40/15 9 * * ? *)", "2026-06-01T09:00", ["2026-06-01T09:10", "2026-06-01T09:25"]),
        # Friday 17:55 is the last of the week; Monday 08:00 the next
        (
            "cron(0/5 8-17 ? * MON-FRI *)",
            "2026-06-05T17:50",
            ["2026-06-05T17:55", "2026-06-08T08:00"],
        ),
        ("cron(0 18 ? * mon-fri *)", "2026-06-05T18:00", ["2026-06-08T18:00", "2026-06-09T18:00"]),
        ("cron(0 9 ? * 2#1 *)", "2026-06-02T00:00", ["2026-07-06T09:00", "2026-08-03T09:00"]),
        ("cron(0 9 ? * MON#1 *)", "2026-06-02T00:00", ["2026-07-06T09:00", "2026-08-03T09:00"]),
        ("cron(0 9 ? * 6#5 *)", "2026-01-01T00:00", ["2026-01-30T09:00", "2026-05-29T09:00"]),
        ("cron(15 10 ? * 6L 2019-2022)", "2022-11-30T00:00", ["2022-12-30T10:15"]),
        ("cron(0 12 ? * L *)", "2026-06-01T00:00", ["2026-06-06T12:00", "2026-06-13T12:00"]),
        ("cron(0 0 L * ? *)", "2028-02-01T00:00", ["2028-02-29T00:00", "2028-03-31T00:00"]),
        ("cron(0 0 L 2 ? *)", "2027-01-01T00:00", ["2027-02-28T00:00", "2028-02-29T00:00"]),
        # last weekday: May 2026 ends on a Sunday, so Friday the 29th
        ("cron(0 0 LW * ? *)", "2026-05-01T00:00", ["2026-05-29T00:00", "2026-06-30T00:00"]),
        # the 15th: a Saturday in August 2026 (Friday 14th), a Sunday in November (Monday 16th)
        ("cron(0 0 15W 8,11 ? *)", "2026-08-01T00:00", ["2026-08-14T00:00", "2026-11-16T00:00"]),
        # 1W on a Saturday the 1st stays in the month: Monday the 3rd
        ("cron(0 0 1W 8 ? *)", "2026-07-01T00:00", ["2026-08-03T00:00"]),
        # 31W on a Sunday the 31st (May 2026): Friday the 29th; months without a 31st: none
        ("cron(0 0 31W * ? *)", "2026-04-01T00:00", ["2026-05-29T00:00", "2026-07-31T00:00"]),
        ("cron(0 0 29 2 ? *)", "2026-03-01T00:00", ["2028-02-29T00:00", "2032-02-29T00:00"]),
        ("cron(0 0 31 2 ? *)", "2026-03-01T00:00", []),  # never
        ("cron(0 0 1 1 ? 2020,2030)", "2021-06-01T00:00", ["2030-01-01T00:00"]),
        (
            "cron(0 22-1 * * ? *)",
            "2026-06-01T21:00",
            [
                "2026-06-01T22:00",
                "2026-06-01T23:00",
                "2026-06-02T00:00",
                "2026-06-02T01:00",
                "2026-06-02T22:00",
            ],
        ),
        (
            "cron(0 0 ? * FRI-MON *)",
            "2026-06-02T00:00",
            [
                "2026-06-05T00:00",
                "2026-06-06T00:00",
                "2026-06-07T00:00",
                "2026-06-08T00:00",
                "2026-06-12T00:00",
            ],
        ),
        ("cron(0 0 1 JAN,jul ? *)", "2026-02-01T00:00", ["2026-07-01T00:00", "2027-01-01T00:00"]),
        ("cron(30 23 31 12 ? *)", "2026-12-31T23:30", ["2027-12-31T23:30"]),
    ],
)
def test_cron_ticks_in_utc(expression: str, after: str, expected: list[str]) -> None:
    found = ticks(expression, "UTC", utc(after), len(expected) + 1)
    assert [local(t, "UTC").removesuffix(" UTC") for t in found][: len(expected)] == expected
    if not expected:
        assert found == []


# Europe/Berlin in 2026: CET (+1) until 29 March 02:00, which becomes 03:00 CEST (+2); back to
# CET on 25 October, 03:00 CEST becoming 02:00 CET. America/New_York: 8 March, 1 November.
@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # 02:30 does not exist on 29 March: that day is skipped
        (
            "cron(30 2 * * ? *)",
            "Europe/Berlin",
            "2026-03-27T12:00",
            ["2026-03-28T02:30 CET", "2026-03-30T02:30 CEST", "2026-03-31T02:30 CEST"],
        ),
        # 02:30 happens twice on 25 October: it fires once, the first time (CEST)
        (
            "cron(30 2 * * ? *)",
            "Europe/Berlin",
            "2026-10-24T12:00",
            ["2026-10-25T02:30 CEST", "2026-10-26T02:30 CET"],
        ),
        # hourly through the night the clocks go back: the repeated 02:00 is not run again
        (
            "cron(0 * * * ? *)",
            "Europe/Berlin",
            "2026-10-24T23:30",  # 01:30 CEST
            ["2026-10-25T02:00 CEST", "2026-10-25T03:00 CET", "2026-10-25T04:00 CET"],
        ),
        # hourly through the night the clocks go forward: 02:00 does not exist
        (
            "cron(0 * * * ? *)",
            "Europe/Berlin",
            "2026-03-28T23:30",  # 00:30 CET
            ["2026-03-29T01:00 CET", "2026-03-29T03:00 CEST", "2026-03-29T04:00 CEST"],
        ),
        # 09:00 local stays 09:00 local: 08:00 UTC in winter, 07:00 UTC in summer
        (
            "cron(0 9 ? * FRI *)",
            "Europe/Berlin",
            "2026-03-26T00:00",
            ["2026-03-27T09:00 CET", "2026-04-03T09:00 CEST"],
        ),
        (
            "cron(30 1 * * ? *)",
            "America/New_York",
            "2026-10-31T12:00",
            ["2026-11-01T01:30 EDT", "2026-11-02T01:30 EST"],
        ),
        (
            "cron(30 2 ? * SUN *)",
            "America/New_York",
            "2026-03-01T12:00",
            ["2026-03-15T02:30 EDT", "2026-03-22T02:30 EDT"],  # 8 March 02:30 does not exist
        ),
        ("at(2026-12-01T09:00:00)", "Europe/Berlin", "2026-06-01T00:00", ["2026-12-01T09:00 CET"]),
        # a repeated local time: the first occurrence
        ("at(2026-10-25T02:30:00)", "Europe/Berlin", "2026-06-01T00:00", ["2026-10-25T02:30 CEST"]),
        ("at(2026-12-01T09:00:00)", "UTC", "2026-12-01T09:00", []),  # already past: never
    ],
)
def test_ticks_in_time_zones(expression: str, zone: str, after: str, expected: list[str]) -> None:
    found = ticks(expression, zone, utc(after), len(expected) + 1)
    assert [local(t, zone) for t in found][: len(expected)] == expected
    if not expected:
        assert found == []


def test_after_the_first_of_a_repeated_hour_the_next_tick_is_the_next_new_one() -> None:
    """From inside the repeated hour (02:10 CET, the second pass), the 02:20 and 02:40 of
    the first pass are behind us: next is 03:00 CET."""
    after = utc("2026-10-25T01:10")  # 02:10 CET
    assert [
        local(t, "Europe/Berlin") for t in ticks("cron(0/20 * * * ? *)", "Europe/Berlin", after, 2)
    ] == [
        "2026-10-25T03:00 CET",
        "2026-10-25T03:20 CET",
    ]


def test_a_rate_is_a_fixed_duration_through_daylight_saving_time() -> None:
    """A day is 24 hours, as EventBridge Scheduler counts it: 12:00 CET becomes 13:00 CEST."""
    anchor = utc("2026-03-28T11:00")  # 12:00 CET
    found = ticks("rate(1 day)", "Europe/Berlin", anchor - 1, 3, anchor=anchor)
    assert [local(t, "Europe/Berlin") for t in found] == [
        "2026-03-28T12:00 CET",
        "2026-03-29T13:00 CEST",
        "2026-03-30T13:00 CEST",
    ]
    assert [b - a for a, b in itertools.pairwise(found)] == [86400, 86400]


@pytest.mark.parametrize(
    ("anchor", "after", "expected"),
    [
        (1000, 0, 1000),  # before the anchor: the first tick is the anchor
        (1000, 999.5, 1000),
        (1000, 1000, 1300),
        (1000, 1299.99, 1300),
        (1000, 1300, 1600),
        (1000, 100_000.5, 100_300),
    ],
)
def test_rate_counts_from_its_anchor(anchor: int, after: float, expected: int) -> None:
    assert schedules.compiled("rate(5 minutes)", "UTC").next_after(after, anchor) == expected


@pytest.mark.parametrize(
    ("zone", "says"),
    [
        ("Mars/Olympus_Mons", "unknown time zone"),
        ("../../etc/passwd", "unknown time zone"),
        ("", "unknown time zone"),
        ("Europe/berlin", "unknown time zone"),
        ("localtime", "unknown time zone"),  # the host's: replicas on other hosts differ
    ],
)
def test_unknown_time_zones(zone: str, says: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        schedules.compiled("rate(1 minute)", zone)
    assert says in str(caught.value)


def test_an_at_time_that_does_not_exist_in_its_zone_is_refused() -> None:
    with pytest.raises(ScheduleError) as caught:
        schedules.compiled("at(2026-03-29T02:30:00)", "Europe/Berlin")
    assert "does not exist in Europe/Berlin" in str(caught.value)
    schedules.compiled("at(2026-03-29T02:30:00)", "UTC")  # fine where the clock does not jump


SECOND = schedules.compiled("rate(1 second)", "UTC")
FIVE_MINUTES = schedules.compiled("rate(5 minutes)", "UTC")
ONCE = schedules.compiled("at(1970-01-01T00:16:40)", "UTC")  # 1000


@pytest.mark.parametrize(
    ("schedule", "cursor", "now", "catch_up", "expected"),
    [
        # on time: the one tick due fires
        (SECOND, 99, 100.2, "latest", Plan(100, (100,), 0)),
        (SECOND, 100, 100.9, "latest", None),  # nothing due
        # a replica slow by 3 s: still within the 5 s grace, every tick fires
        (SECOND, 99, 103.0, "none", Plan(103, (100, 101, 102, 103), 0)),
        # every replica away for 10 s: the last 5 s of ticks fire, the older ones are missed
        (SECOND, 100, 110.5, "latest", Plan(110, (106, 107, 108, 109, 110), 5)),
        (SECOND, 100, 110.5, "none", Plan(110, (106, 107, 108, 109, 110), 5)),
        # rate(5 minutes), away 1000 s: 300, 600 and 900 are all more than 60 s late
        (FIVE_MINUTES, 0, 1000, "latest", Plan(900, (900,), 2)),
        (FIVE_MINUTES, 0, 1000, "none", Plan(900, (), 3)),
        # ... but back within a minute of the latest: it is on time whatever the policy
        (FIVE_MINUTES, 0, 950, "none", Plan(900, (900,), 2)),
        (FIVE_MINUTES, 0, 960, "none", Plan(900, (900,), 2)),
        (FIVE_MINUTES, 0, 961, "none", Plan(900, (), 3)),
        # a one-time schedule
        (ONCE, 999, 1000, "none", Plan(1000, (1000,), 0)),
        (ONCE, 1000, 5000, "latest", None),  # fired: never again
        (ONCE, 999, 5000, "latest", Plan(1000, (1000,), 0)),
        (ONCE, 999, 5000, "none", Plan(1000, (), 1)),
    ],
)
def test_plan(
    schedule: schedules.Schedule,
    cursor: int,
    now: float,
    catch_up: schedules.CatchUp,
    expected: Plan | None,
) -> None:
    assert schedules.plan(schedule, 0, cursor, now, catch_up) == expected


def test_a_long_backlog_is_planned_in_chunks_and_only_its_end_may_fire() -> None:
    """Hours away on rate(1 second): chunks of `limit` are passed over as missed; the last
    chunk fires what is within its grace."""
    now, cursor, missed = 10_000.5, 0, 0
    fired: list[int] = []
    while (plan := schedules.plan(SECOND, 0, cursor, now, "latest", limit=1000)) is not None:
        cursor, missed = plan.cursor, missed + plan.missed
        fired.extend(plan.fire)
    assert cursor == 10_000
    assert fired == [9996, 9997, 9998, 9999, 10_000]
    assert missed + len(fired) == 10_000  # every tick either fired or counted missed


def test_grace() -> None:
    assert schedules.grace(100, 101) == schedules.GRACE_MIN_S
    assert schedules.grace(100, 130) == 30
    assert schedules.grace(100, 400) == schedules.GRACE_MAX_S
    assert schedules.grace(100, None) == schedules.GRACE_MAX_S


def test_scheduled_event_is_eventbridges() -> None:
    tick = utc("2026-12-01T08:00")
    event_id = schedules.tick_id("ns", "nightly", tick)
    assert schedules.scheduled_event(event_id, "nightly", tick, "local", "000000000000") == {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": "2026-12-01T08:00:00Z",
        "region": "local",
        "resources": ["arn:aws:scheduler:local:000000000000:schedule/default/nightly"],
        "detail": {},
    }


def test_tick_ids_are_uuids_the_same_on_every_replica() -> None:
    first = schedules.tick_id("ns", "nightly", 1000)
    assert first == schedules.tick_id("ns", "nightly", 1000)
    assert uuid.UUID(first).version == 5
    others = {
        schedules.tick_id("ns", "nightly", 1060),
        schedules.tick_id("ns", "hourly", 1000),
        schedules.tick_id("other", "nightly", 1000),
    }
    assert first not in others
    assert len(others) == 3


def test_weekday_numbers_are_aws_ones() -> None:
    # 2026-06-07 is a Sunday (1), 2026-06-13 a Saturday (7)
    assert [cron.weekday(2026, 6, d) for d in range(7, 14)] == [1, 2, 3, 4, 5, 6, 7]
