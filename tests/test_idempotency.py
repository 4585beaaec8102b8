"""Idempotent functions run at most once per event id; duplicates are answered and counted."""

from __future__ import annotations

import json
import time

import pika

from tests.conftest import Router, unique


def test_sync_duplicates_are_answered_from_the_stored_result(router: Router) -> None:
    function, trigger = unique("idem"), unique("idem")
    router.put_function(function, handler="testfns:record", isolation="thread", idempotent=True)
    router.put_trigger(trigger, function=function, type="webhook")
    headers = {"X-GitHub-Delivery": unique("delivery")}
    first = router.http.post(f"/hooks/{trigger}", json={"n": 1}, headers=headers)
    second = router.http.post(f"/hooks/{trigger}", json={"n": 1}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    other = router.http.post(
        f"/hooks/{trigger}", json={"n": 2}, headers={"X-GitHub-Delivery": unique("delivery")}
    )
    assert other.status_code == 200
    assert len(router.ledger(function)) == 2
    assert router.metric("router_duplicates_total", function=function) == 1


def test_amqp_redeliveries_of_one_message_id_run_once(
    router: Router, amqp: pika.channel.Channel
) -> None:
    function, trigger = unique("idem"), unique("idem")
    exchange = f"{router.namespace}-orders"
    router.put_function(function, handler="testfns:record", isolation="process", idempotent=True)
    router.put_trigger(
        trigger, function=function, type="amqp", exchange=exchange, routing_key="idem.#"
    )
    for _ in range(3):
        amqp.basic_publish(
            exchange,
            "idem.x",
            json.dumps({"x": 1}).encode(),
            pika.BasicProperties(message_id="same-order-1", content_type="application/json"),
        )
    deadline = time.monotonic() + 15
    while router.metric("router_duplicates_total", function=function) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(router.ledger(function)) == 1


def test_failures_release_the_claim_for_retries(router: Router) -> None:
    function = unique("idem")
    router.put_function(
        function,
        handler="testfns:failing_with_time",
        isolation="thread",
        idempotent=True,
        retry={"max_attempts": 3, "backoff_s": 0},
    )
    response = router.http.post(
        f"/api/v1/functions/{function}/invoke?mode=async",
        json={},
        headers={"Idempotency-Key": unique("key")},
    )
    router.invocation(response.json()["invocation_id"], ("dead_lettered",))
    assert len(router.ledger(function)) == 3
    assert router.metric("router_duplicates_total", function=function) == 0


def test_non_idempotent_functions_run_every_time(router: Router) -> None:
    function = unique("plain")
    router.put_function(function, handler="testfns:record", isolation="thread")
    for _ in range(2):
        router.http.post(
            f"/api/v1/functions/{function}/invoke", json={}, headers={"Idempotency-Key": "k"}
        )
    assert len(router.ledger(function)) == 2
