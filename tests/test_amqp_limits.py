"""What an amqp trigger may reach and take in: a message over ROUTER_MAX_EVENT_BYTES is
dead-lettered unrun (and can still be replayed as the event it was), and no trigger may bind
an exchange of the router's own, of any namespace, or the default exchange."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pika
import pytest

from router.names import is_router_exchange
from tests.conftest import Router, cleanup, start_router, stop, unique, wait_ready

LIMIT = 4096
Channel = pika.adapters.blocking_connection.BlockingChannel


@pytest.fixture(scope="module")
def limited() -> Iterator[Router]:
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    process, port, log = start_router(namespace, ROUTER_MAX_EVENT_BYTES=str(LIMIT))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield Router(namespace, port, process, log)
    finally:
        stop(process)
        cleanup(namespace)


def test_an_oversize_message_is_dead_lettered_unrun(limited: Router, amqp: Channel) -> None:
    router = limited
    function, trigger = unique("big"), unique("big")
    exchange = f"{router.namespace}-orders"
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(
        trigger, function=function, type="amqp", exchange=exchange, routing_key="big.#"
    )
    big = b'{"blob": "' + b"x" * LIMIT + b'"}'
    properties = pika.BasicProperties(
        content_type="application/json", message_id="big-1", headers={"tenant": "acme"}
    )
    amqp.basic_publish(exchange, "big.one", big, properties, mandatory=True)
    amqp.basic_publish(exchange, "big.two", b'{"small": true}', pika.BasicProperties())
    router.wait_ledger(function, 1)
    labels = {"function": function, "reason": "oversize"}
    deadline = time.monotonic() + 15
    while not router.metric("router_dead_letters_total", **labels):
        assert time.monotonic() < deadline, "the oversize message was not dead-lettered"
        time.sleep(0.05)
    assert router.metric("router_async_events_dropped_total", **labels) == 1
    time.sleep(0.3)
    assert [r["event"]["body"] for r in router.ledger(function)] == [{"small": True}]
    letters = router.http.get(f"/api/v1/functions/{function}/dlq").json()
    assert letters["count"] == 1
    letter = letters["messages"][0]
    assert (letter["reason"], letter["kind"], letter["trigger"]) == ("oversize", "sealed", trigger)
    assert letter["size"] == len(big)
    assert letter["errors"][0]["type"] == "EventTooLarge"
    assert str(LIMIT) in letter["errors"][0]["message"]
    # A replay (say, after raising the limit) runs the AMQP event the message was.
    replayed = router.http.post(
        f"/api/v1/functions/{function}/dlq/replay", json={"id": letter["id"]}
    )
    assert replayed.json() == {"replayed": 1}
    runs = router.wait_ledger(function, 2)
    event = runs[1]["event"]
    assert event["body"] == {"blob": "x" * LIMIT}
    assert (event["exchange"], event["routing_key"], event["message_id"]) == (
        exchange,
        "big.one",
        "big-1",
    )
    assert event["headers"] == {"tenant": "acme"}
    assert runs[1]["request_id"] == letter["id"]


@pytest.mark.parametrize(
    "exchange",
    [
        "router.work",
        "router.dlx",
        "router.delay.1000",
        "other-namespace.work",
        "other_ns.dlx",
        "ns.delay.86400000",
        "amq.default",
    ],
)
def test_router_exchanges_cannot_be_bound(router: Router, exchange: str) -> None:
    function = unique("reach")
    router.put_function(function, handler="testfns:record", isolation="thread")
    response = router.http.put(
        f"/api/v1/triggers/{unique('reach')}",
        json={"function": function, "type": "amqp", "exchange": exchange, "routing_key": "#"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "exchange"


def test_own_work_exchange_cannot_be_bound(router: Router) -> None:
    function = unique("reach")
    router.put_function(function, handler="testfns:record", isolation="thread")
    for exchange in (f"{router.namespace}.work", f"{router.namespace}.dlx"):
        response = router.http.put(
            f"/api/v1/triggers/{unique('reach')}",
            json={"function": function, "type": "amqp", "exchange": exchange},
        )
        assert response.status_code == 400
        assert "router" in response.json()["error"]


@pytest.mark.parametrize(
    ("name", "reserved"),
    [
        ("router.work", True),
        ("a.dlx", True),
        ("a.delay.250", True),
        ("orders", False),
        ("orders.v1.created", False),
        ("workers", False),
        ("shop.delayed", False),
        ("amq.topic", False),
    ],
)
def test_is_router_exchange(name: str, reserved: bool) -> None:
    assert is_router_exchange(name) is reserved


def test_an_event_id_longer_than_an_amqp_message_id_is_queued(router: Router) -> None:
    """A sender's delivery id may exceed the 255 bytes of an AMQP message id: the event is
    still accepted (once a 503), retried and dead-lettered under it."""
    function, trigger = unique("longid"), unique("longid")
    router.put_function(
        function, handler="testfns:fail", isolation="thread", retry={"max_attempts": 2}
    )
    router.put_trigger(trigger, function=function, type="webhook", mode="async")
    event_id = "delivery-" + "x" * 300
    accepted = router.http.post(f"/hooks/{trigger}", json={}, headers={"X-Request-Id": event_id})
    assert accepted.status_code == 202, accepted.text
    record = router.invocation(accepted.json()["invocation_id"], ("dead_lettered",))
    assert (record["event_id"], record["attempt"]) == (event_id, 2)
