"""Schedule triggers end to end: a real router fires them through the function's queue."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from router import schedules
from tests.conftest import Router, cleanup, start_router, stop, unique, wait_ready
from tests.test_cli import cli


def wait_for(check: Any, timeout: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def ledger_state(router: Router, trigger: str) -> dict[str, str]:
    raw = router.redis.hgetall(f"{router.namespace}:schedule:{trigger}")
    return {k.decode(): v.decode() for k, v in raw.items()}


def tick_of(event: dict[str, Any]) -> int:
    return int(
        datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    )


@contextlib.contextmanager
def scheduled(router: Router, name: str, **spec: Any) -> Iterator[str]:
    router.put_trigger(name, type="schedule", **spec)
    try:
        yield name
    finally:
        router.http.delete(f"/api/v1/triggers/{name}")


def test_a_rate_fires_every_second_with_eventbridges_scheduled_event(router: Router) -> None:
    function, trigger = unique("tick"), unique("every")
    router.put_function(function, handler="testfns:record", isolation="thread")
    with scheduled(router, trigger, function=function, schedule="rate(1 second)"):
        runs = router.wait_ledger(function, 3)
    events = [run["event"] for run in runs]
    ticks = [tick_of(event) for event in events]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # every second, once
    for event, tick in zip(events, ticks, strict=True):
        assert event == {
            "version": "0",
            "id": schedules.tick_id(router.namespace, trigger, tick),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "000000000000",
            "time": event["time"],
            "region": "local",
            "resources": [f"arn:aws:scheduler:local:000000000000:schedule/default/{trigger}"],
            "detail": {},
        }
    fired = router.metric("router_schedule_ticks_fired_total", trigger=trigger)
    assert fired >= 3
    assert router.metric("router_schedule_lag_seconds_count", trigger=trigger) == fired
    assert router.metric("router_schedule_ticks_missed_total", trigger=trigger) == 0


def test_input_is_the_event_when_given(router: Router) -> None:
    function, trigger = unique("input"), unique("every")
    router.put_function(function, handler="testfns:record", isolation="thread")
    job = {"job": "nightly-report", "regions": ["eu", "us"]}
    with scheduled(router, trigger, function=function, schedule="rate(1 second)", input=job):
        runs = router.wait_ledger(function, 2)
    assert [run["event"] for run in runs[:2]] == [job, job]


def test_at_fires_once_at_its_local_time(router: Router) -> None:
    """`at` is wall-clock time in the trigger's time zone."""
    function, trigger = unique("once"), unique("at")
    router.put_function(function, handler="testfns:record", isolation="thread")
    berlin = ZoneInfo("Europe/Berlin")
    when = (datetime.now(berlin) + timedelta(seconds=3)).replace(microsecond=0)
    expression = f"at({when.replace(tzinfo=None).isoformat()})"
    with scheduled(
        router, trigger, function=function, schedule=expression, timezone="Europe/Berlin"
    ):
        (run,) = router.wait_ledger(function, 1)
        assert tick_of(run["event"]) == int(when.timestamp())
        stored = router.http.get(f"/api/v1/triggers/{trigger}").json()
        assert stored["schedule"] == expression
        assert stored["timezone"] == "Europe/Berlin"
        wait_for(lambda: ledger_state(router, trigger)["cursor"] == str(int(when.timestamp())))
        time.sleep(2)  # an at() schedule has no second tick
    assert len(router.ledger(function)) == 1


def test_ticks_go_through_the_queue_so_retries_and_the_dead_letter_queue_apply(
    router: Router,
) -> None:
    function, trigger = unique("failing"), unique("at")
    router.put_function(
        function,
        handler="testfns:fail",
        isolation="thread",
        retry={"max_attempts": 2, "backoff_s": 0},
    )
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    expression = f"at({when.replace(tzinfo=None).isoformat()})"
    with scheduled(router, trigger, function=function, schedule=expression):
        dead = wait_for(
            lambda: router.http.get(f"/api/v1/functions/{function}/dlq").json()["messages"],
            what="the tick's event in the dead-letter queue",
        )
    (letter,) = dead
    assert letter["trigger"] == trigger
    assert [error["attempt"] for error in letter["errors"]] == [1, 2]
    assert letter["event"]["detail-type"] == "Scheduled Event"
    runs = router.ledger(function)
    assert [run["event"]["id"] for run in runs] == [letter["event"]["id"]] * 2


def test_a_schedule_may_name_an_alias_and_runs_its_version(router: Router) -> None:
    function, trigger = unique("aliased"), unique("every")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.http.post(f"/api/v1/functions/{function}/versions").raise_for_status()
    router.http.put(
        f"/api/v1/functions/{function}/aliases/live", json={"function_version": "1"}
    ).raise_for_status()
    with scheduled(router, trigger, function=f"{function}:live", schedule="rate(1 second)"):
        runs = router.wait_ledger(function, 2)
    assert {run["context"]["function_version"] for run in runs} == {"1"}


def test_deleting_a_schedule_stops_it_and_forgets_its_ticks(router: Router) -> None:
    function, trigger = unique("stop"), unique("every")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(trigger, function=function, type="schedule", schedule="rate(1 second)")
    router.wait_ledger(function, 2)
    assert router.http.delete(f"/api/v1/triggers/{trigger}").status_code == 204
    assert ledger_state(router, trigger) == {}
    time.sleep(1.5)  # what was claimed before the delete has run by now
    settled = len(router.ledger(function))
    time.sleep(2.5)
    assert len(router.ledger(function)) == settled


def test_putting_it_again_unchanged_keeps_its_count_and_a_new_timing_restarts_it(
    router: Router,
) -> None:
    """A declared trigger is put again at every start: that must not restart its rate (or
    fire its first tick again). A new schedule or time zone does restart it, as on AWS."""
    function, trigger = unique("again"), unique("hourly")
    router.put_function(function, handler="testfns:record", isolation="thread")
    spec = {"function": function, "schedule": "rate(1 hour)"}
    with scheduled(router, trigger, **spec):
        router.wait_ledger(function, 1)  # a rate's first tick fires at once
        anchor = ledger_state(router, trigger)["anchor"]
        time.sleep(1.1)
        router.put_trigger(trigger, type="schedule", **spec)
        router.put_trigger(trigger, type="schedule", **spec, input={"changed": "input only"})
        assert ledger_state(router, trigger)["anchor"] == anchor
        changed = {**spec, "schedule": "rate(2 hours)", "input": {"changed": "input only"}}
        router.put_trigger(trigger, type="schedule", **changed)
        assert int(ledger_state(router, trigger)["anchor"]) > int(anchor)
        second = router.wait_ledger(function, 2)[1]
    assert second["event"] == {"changed": "input only"}
    assert len(router.ledger(function)) == 2


def test_a_claimed_tick_whose_publisher_died_is_taken_over(router: Router) -> None:
    """What a replica killed between its claim and RabbitMQ's confirm leaves behind: a lease
    on the tick that runs out. Another replica's sweep fires it, under the same event id."""
    function, trigger = unique("orphan"), unique("hourly")
    router.put_function(function, handler="testfns:record", isolation="thread")
    with scheduled(router, trigger, function=function, schedule="rate(1 hour)"):
        router.wait_ledger(function, 1)
        state = ledger_state(router, trigger)
        orphan = int(state["anchor"]) - 3600  # claimed an hour ago, never queued
        router.redis.hset(f"{router.namespace}:schedule:{trigger}", f"t:{orphan}", time.time())
        runs = router.wait_ledger(function, 2)
        wait_for(lambda: f"t:{orphan}" not in ledger_state(router, trigger), what="closed")
    assert tick_of(runs[1]["event"]) == orphan
    assert runs[1]["event"]["id"] == schedules.tick_id(router.namespace, trigger, orphan)


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        ({"schedule": "rate(5 minute)"}, "schedule", "rate(5 minutes)"),
        ({"schedule": "rate(1 minutes)"}, "schedule", "rate(1 minute)"),
        ({"schedule": "rate(0 seconds)"}, "schedule", "from 1"),
        ({"schedule": "cron(0 12 * * * *)"}, "schedule", "must be '?'"),
        ({"schedule": "cron(0 12 * * ?)"}, "schedule", "6 fields"),
        ({"schedule": "cron(0 12 ? * 3#1,6#3 *)"}, "schedule", "one expression"),
        ({"schedule": "every day"}, "schedule", "not a schedule expression"),
        ({"schedule": "rate(1 hour)", "timezone": "Mars/Olympus_Mons"}, "timezone", "time zone"),
        (
            {"schedule": "at(2026-03-29T02:30:00)", "timezone": "Europe/Berlin"},
            "schedule",
            "does not exist in Europe/Berlin",
        ),
        ({"schedule": "rate(1 hour)", "filter": {"a": [1]}}, "filter", "no filter"),
        ({"schedule": "rate(1 hour)", "catch_up": "all"}, "catch_up", "latest"),
        ({"schedule": "rate(1 hour)", "input": [1, 2]}, "input", "dictionary"),
        ({}, "schedule", "required"),
    ],
)
def test_bad_schedule_triggers_are_400s_naming_the_field(
    router: Router, spec: dict[str, Any], field: str, says: str
) -> None:
    function = unique("bad")
    router.put_function(function, handler="testfns:record", isolation="thread")
    response = router.http.put(
        f"/api/v1/triggers/{unique('bad')}", json={"function": function, "type": "schedule", **spec}
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["field"] == field, body
    assert says in body["error"], body


def test_a_schedule_for_a_missing_function_is_refused(router: Router) -> None:
    response = router.http.put(
        f"/api/v1/triggers/{unique('orphan')}",
        json={"function": unique("nobody"), "type": "schedule", "schedule": "rate(1 hour)"},
    )
    assert response.status_code == 400
    assert response.json()["field"] == "function"


def test_the_cli_puts_schedules_with_flags(router: Router) -> None:
    function, trigger = unique("clifn"), unique("cron")
    router.put_function(function, handler="testfns:record", isolation="thread")
    made = cli(
        router, "triggers", "put", trigger, "--function", function, "--type", "schedule",
        "--schedule", "cron(0 9 ? * MON-FRI *)", "--timezone", "Europe/Berlin",
        "--catch-up", "none", "--input", '{"report": "daily"}',
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout) == {
        "name": trigger,
        "function": function,
        "type": "schedule",
        "schedule": "cron(0 9 ? * MON-FRI *)",
        "timezone": "Europe/Berlin",
        "catch_up": "none",
        "input": {"report": "daily"},
        "filter": None,
        "description": "",
    }
    table = cli(router, "triggers", "list", "--output", "table").stdout.splitlines()
    assert "SCHEDULE" in table[0]
    assert any(line.startswith(trigger) and "cron(0 9 ? * MON-FRI *)" in line for line in table)
    wrong = cli(router, "triggers", "put", unique("x"), "--function", function, "--type",
                "schedule", "--schedule", "rate(5 minute)")  # fmt: skip
    assert wrong.returncode == 1
    assert "rate(5 minutes)" in wrong.stderr
    assert cli(router, "triggers", "delete", trigger).returncode == 0


@contextlib.contextmanager
def own_namespace() -> Iterator[str]:
    namespace = unique("sched")
    try:
        yield namespace
    finally:
        cleanup(namespace)


def started(namespace: str) -> Router:
    process, port, log = start_router(namespace)
    wait_ready(f"http://127.0.0.1:{port}", process, log)
    return Router(namespace, port, process, log)


def test_ticks_missed_while_every_replica_was_down_follow_catch_up() -> None:
    """Every replica down for 21 minutes over a rate(5 minutes) schedule: its ticks 21.5,
    16.5, 11.5, 6.5 and 1.5 minutes ago were never fired. When a replica returns, `latest`
    runs the one 1.5 minutes ago, once; `none` runs nothing. Either way, the rest count as
    missed. (The ledger is set as that outage leaves it: nobody waits 21 minutes.)"""
    policies = ("latest", "none")
    with own_namespace() as namespace:
        router = started(namespace)
        for policy in policies:
            router.put_function(policy, handler="testfns:record", isolation="thread")
            router.put_trigger(
                policy, function=policy, type="schedule", schedule="rate(5 minutes)",
                catch_up=policy,
            )  # fmt: skip
            router.wait_ledger(policy, 1)  # its first tick, at once
        stop(router.process)
        anchor = int(time.time()) - 1290
        for policy in policies:
            key = f"{namespace}:schedule:{policy}"
            router.redis.delete(key)
            router.redis.hset(key, mapping={"anchor": anchor, "cursor": anchor - 1})
        router = started(namespace)
        try:
            (_, late) = router.wait_ledger("latest", 2)
            assert tick_of(late["event"]) == anchor + 1200
            wait_for(lambda: ledger_state(router, "none")["cursor"] == str(anchor + 1200))
            time.sleep(1)  # anything else would have run by now
            assert len(router.ledger("latest")) == 2
            assert len(router.ledger("none")) == 1
            assert router.metric("router_schedule_ticks_missed_total", trigger="latest") == 4
            assert router.metric("router_schedule_ticks_missed_total", trigger="none") == 5
            assert router.metric("router_schedule_ticks_fired_total", trigger="latest") == 1
            assert router.metric("router_schedule_ticks_fired_total", trigger="none") == 0
        finally:
            stop(router.process)
