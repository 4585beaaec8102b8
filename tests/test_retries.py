"""Retry policy, dead letters and their API: backoff through delay tiers, PermanentError,
Retry(after=...), maximum event age, and list / show / replay / purge of the DLQ."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pika
import pytest

from router import retry
from router.specs import RetryPolicy
from tests.conftest import ROOT, Router, unique


def queue_async(router: Router, function: str, event: object) -> str:
    response = router.http.post(f"/api/v1/functions/{function}/invoke?mode=async", json=event)
    assert response.status_code == 202, response.text
    invocation_id: str = response.json()["invocation_id"]
    return invocation_id


def test_backoff_runs_exactly_max_attempts_then_dead_letters(router: Router) -> None:
    function = unique("backoff")
    router.put_function(
        function,
        handler="testfns:failing_with_time",
        isolation="thread",
        retry={"max_attempts": 3, "backoff_s": 0.5, "backoff_max_s": 1},
    )
    invocation = queue_async(router, function, {"n": 1})
    record = router.invocation(invocation, ("dead_lettered",), timeout=30)
    runs = router.ledger(function)
    assert len(runs) == 3
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(runs)]
    assert all(gap < 1.0 + 0.5 for gap in gaps), gaps  # capped at backoff_max_s (+ slack)
    assert record["error"]["type"] == "RuntimeError"
    assert record["attempt"] == 3
    assert router.metric("router_retries_total", function=function) == 2
    assert router.metric("router_dead_letters_total", function=function, reason="failed") == 1


def test_permanent_error_skips_retries(router: Router) -> None:
    function = unique("perm")
    router.put_function(
        function, handler="testfns:permanent", isolation="process", retry={"max_attempts": 5}
    )
    record = router.invocation(queue_async(router, function, {}), ("dead_lettered",))
    assert len(router.ledger(function)) == 1
    assert record["error"]["type"] == "PermanentError"


def test_retry_after_asks_for_a_delay(router: Router) -> None:
    function = unique("later")
    router.put_function(
        function,
        handler="testfns:retry_later",
        isolation="thread",
        retry={"max_attempts": 3, "backoff_s": 0},
    )
    record = router.invocation(queue_async(router, function, {}), ("succeeded",), timeout=20)
    runs = router.ledger(function)
    assert len(runs) == 2
    assert runs[1]["at"] - runs[0]["at"] >= 0.5  # the 500 ms tier: never longer than asked
    assert record["attempt"] == 2


def test_expired_events_are_dead_lettered_unrun(router: Router, amqp: pika.channel.Channel) -> None:
    function, trigger = unique("old"), unique("old")
    exchange = f"{router.namespace}-orders"
    router.put_function(
        function, handler="testfns:record", isolation="thread", retry={"max_event_age_s": 60}
    )
    router.put_trigger(
        trigger, function=function, type="amqp", exchange=exchange, routing_key="old.#"
    )
    stamp = datetime.now(UTC) - timedelta(hours=1)
    amqp.basic_publish(
        exchange,
        "old.event",
        b'{"stale": true}',
        pika.BasicProperties(
            content_type="application/json", timestamp=int(stamp.timestamp()), message_id="stale-1"
        ),
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if router.metric("router_dead_letters_total", function=function, reason="failed"):
            break
        time.sleep(0.05)
    assert router.ledger(function) == []
    letters = router.http.get(f"/api/v1/functions/{function}/dlq").json()
    assert letters["count"] == 1
    assert letters["messages"][0]["errors"][0]["type"] == "EventExpired"


def test_dead_letter_api_list_show_replay_purge(router: Router) -> None:
    function = unique("fix")
    router.put_function(
        function,
        handler="testfns:fixable",
        isolation="thread",
        retry={"max_attempts": 2, "backoff_s": 0},
    )
    ids = [queue_async(router, function, {"n": n}) for n in range(3)]
    for invocation in ids:
        router.invocation(invocation, ("dead_lettered",))
    listed = router.http.get(f"/api/v1/functions/{function}/dlq").json()
    assert listed["count"] == 3
    assert sorted(m["id"] for m in listed["messages"]) == sorted(ids)
    one = router.http.get(f"/api/v1/functions/{function}/dlq/{ids[0]}").json()
    assert [e["attempt"] for e in one["errors"]] == [1, 2]
    assert one["errors"][0]["type"] == "ValueError"
    assert one["function_version"] == "$LATEST"
    assert one["event"] == {"n": 0}
    assert router.http.get(f"/api/v1/functions/{function}/dlq").json()["count"] == 3  # unchanged
    router.redis.set(f"{router.namespace}:fixed:{function}", "1")  # the fix is deployed
    replayed = router.http.post(f"/api/v1/functions/{function}/dlq/replay", json={"id": ids[0]})
    assert replayed.json() == {"replayed": 1}
    record = router.invocation(ids[0], ("succeeded",))
    assert record["result"] == "fixed"
    assert record["attempt"] == 1
    runs = [r for r in router.ledger(function) if r["event"] == {"n": 0}]
    assert len(runs) == 3  # two failures, then one success after the replay
    purged = router.http.delete(f"/api/v1/functions/{function}/dlq/{ids[1]}")
    assert purged.json() == {"purged": 1}
    everything = cli_replay_all(router, function)
    assert everything == {"replayed": 1}
    router.invocation(ids[2], ("succeeded",))
    assert router.http.get(f"/api/v1/functions/{function}/dlq").json()["count"] == 0
    missing = router.http.post(f"/api/v1/functions/{function}/dlq/replay", json={"id": "nope"})
    assert missing.status_code == 404
    bad = router.http.post(f"/api/v1/functions/{function}/dlq/replay", json={"which": 1})
    assert bad.status_code == 400


def cli_replay_all(router: Router, function: str) -> object:
    result = subprocess.run(
        [sys.executable, "-m", "router", "dlq", "replay", function, "--all", "--url", router.url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


POLICY = RetryPolicy(max_attempts=5, backoff_s=1, backoff_max_s=10)


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 1.0, 1.0),
        (2, 1.0, 2.0),
        (3, 0.5, 3.0),
        (4, 1.0, 8.0),
        (5, 1.0, 10.0),
        (9, 1.0, 10.0),
        (1, 0.0, 0.5),  # the floor: half the delay, never an immediate retry
        (4, 0.0, 4.0),
    ],
)
def test_backoff_equal_jitter(attempt: int, rand: float, expected: float) -> None:
    assert retry.backoff(attempt, POLICY, lambda: rand) == expected


@pytest.mark.parametrize(
    ("delay_s", "tier_ms"),
    [
        (0, 0),
        (0.05, 0),
        (0.1, 100),
        (0.3, 250),
        (1.5, 1000),
        (7, 5000),
        (299, 120_000),
        (10**7, 86_400_000),
    ],
)
def test_delay_tiers_never_exceed_the_delay(delay_s: float, tier_ms: int) -> None:
    assert retry.tier(delay_s) == tier_ms


@pytest.mark.parametrize(
    ("status", "attempt", "permanent", "expected"),
    [
        ("failed", 1, True, "dead_letter"),
        ("failed", 1, False, "retry"),
        ("succeeded", 1, True, "ack"),
    ],
)
def test_permanent_decisions(status: str, attempt: int, permanent: bool, expected: str) -> None:
    assert retry.decide(status, attempt, 0, POLICY, permanent=permanent) == expected
