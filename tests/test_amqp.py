"""Point 5: a message any AMQP client publishes to the user's exchange runs the function once,
with the AMQP event shape; filtered messages are counted, not run."""

from __future__ import annotations

import base64
import json
import subprocess
import time

import pika

from tests.conftest import Router, unique


def orders_trigger(router: Router, exchange: str = "") -> tuple[str, str, str]:
    function, trigger = unique("orders"), unique("orders")
    exchange = exchange or f"{router.namespace}-orders"
    router.put_function(function, handler="testfns:record", timeout_s=10, isolation="thread")
    router.put_trigger(
        trigger,
        function=function,
        type="amqp",
        exchange=exchange,
        exchange_type="topic",
        routing_key="order.#",
        filter={"body": {"region": ["eu"]}},
    )
    return function, trigger, exchange


def publish(
    channel: pika.channel.Channel,
    exchange: str,
    key: str,
    body: dict[str, object],
    **properties: object,
) -> None:
    channel.basic_publish(
        exchange,
        key,
        json.dumps(body).encode(),
        pika.BasicProperties(content_type="application/json", **properties),
        mandatory=True,
    )


def test_amqp_message_runs_once_with_event_shape(
    router: Router, amqp: pika.channel.Channel
) -> None:
    function, _trigger, exchange = orders_trigger(router)
    publish(
        amqp,
        exchange,
        "order.eu.created",
        {"region": "eu", "id": 1},
        message_id="order-1",
        correlation_id="corr-1",
        headers={"tenant": "acme"},
    )
    entries = router.wait_ledger(function, 1)
    time.sleep(0.5)
    assert len(router.ledger(function)) == 1
    event = entries[0]["event"]
    assert event["body"] == {"region": "eu", "id": 1}
    assert event["routing_key"] == "order.eu.created"
    assert event["exchange"] == exchange
    assert event["message_id"] == "order-1"
    assert event["correlation_id"] == "corr-1"
    assert event["content_type"] == "application/json"
    assert event["headers"] == {"tenant": "acme"}
    assert event["redelivered"] is False
    assert event["attempt"] == 1
    assert set(event) >= {"timestamp"}


def test_filtered_message_is_counted_not_run(router: Router, amqp: pika.channel.Channel) -> None:
    function, trigger, exchange = orders_trigger(router)
    publish(amqp, exchange, "order.us.created", {"region": "us"})
    publish(amqp, exchange, "order.eu.created", {"region": "eu"})
    entries = router.wait_ledger(function, 1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if router.metric("router_events_filtered_total", function=function, trigger=trigger):
            break
        time.sleep(0.05)
    assert router.metric("router_events_filtered_total", function=function, trigger=trigger) == 1
    assert [e["event"]["body"]["region"] for e in entries] == ["eu"]
    assert len(router.ledger(function)) == 1


def test_amqp_invocations_are_recorded_with_event_id(
    router: Router, amqp: pika.channel.Channel
) -> None:
    function, _, exchange = orders_trigger(router)
    publish(amqp, exchange, "order.eu.paid", {"region": "eu"}, message_id="evt-9")
    entry = router.wait_ledger(function, 1)[0]
    record = router.invocation(entry["request_id"], ("succeeded",))
    assert record["event_id"] == "evt-9"


def test_cloudevents_attributes_are_exposed(router: Router, amqp: pika.channel.Channel) -> None:
    function, _, exchange = orders_trigger(router)
    publish(
        amqp,
        exchange,
        "order.eu.created",
        {"region": "eu"},
        headers={
            "cloudEvents:specversion": "1.0",
            "cloudEvents:id": "ce-1",
            "cloudEvents:type": "com.acme.order",
            "cloudEvents:source": "/shop",
        },
    )
    event = router.wait_ledger(function, 1)[0]["event"]
    assert event["cloudevent"] == {
        "specversion": "1.0",
        "id": "ce-1",
        "type": "com.acme.order",
        "source": "/shop",
    }
    record = router.invocation(router.ledger(function)[0]["request_id"], ("succeeded",))
    assert record["event_id"] == "ce-1"


def test_consumer_prefetch_is_twice_concurrency_max(router: Router) -> None:
    function = unique("prefetch")
    router.put_function(function, handler="testfns:record", concurrency={"min": 0, "max": 3})
    queue = f"{router.namespace}.fn.{function}"
    deadline = time.monotonic() + 20
    while (prefetch := consumer_prefetch(queue)) is None:
        assert time.monotonic() < deadline, "no consumer on the function's queue"
        time.sleep(0.2)
    assert prefetch == 6  # concurrency.max x ROUTER_PREFETCH_MULTIPLIER (2 by default)


def consumer_prefetch(queue: str) -> int | None:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_consumers", "queue_name", "prefetch_count"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in listed.splitlines():
        name, _, prefetch = line.partition("\t")
        if name == queue:
            return int(prefetch)
    return None


def test_trigger_delete_unbinds(router: Router, amqp: pika.channel.Channel) -> None:
    function, trigger, exchange = orders_trigger(router, f"{router.namespace}-orders-solo")
    assert router.http.delete(f"/api/v1/triggers/{trigger}").status_code == 204
    try:
        publish(amqp, exchange, "order.eu.created", {"region": "eu"})
        raised = False
    except pika.exceptions.UnroutableError:
        raised = True
    assert raised, "no queue is bound any more, so the broker returns the message"
    assert router.ledger(function) == []
    amqp.exchange_delete(exchange)


def test_non_json_body_is_text(router: Router, amqp: pika.channel.Channel) -> None:
    function, trigger = unique("text"), unique("text")
    exchange = f"{router.namespace}-orders"
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(
        trigger, function=function, type="amqp", exchange=exchange, routing_key="text.#"
    )
    amqp.basic_publish(
        exchange, "text.plain", b"hello there", pika.BasicProperties(content_type="text/plain")
    )
    event = router.wait_ledger(function, 1)[0]["event"]
    assert event["body"] == "hello there"


def test_a_binary_body_says_it_is_base64(router: Router, amqp: pika.channel.Channel) -> None:
    function, trigger = unique("bin"), unique("bin")
    exchange = f"{router.namespace}-orders"
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(
        trigger, function=function, type="amqp", exchange=exchange, routing_key="bin.#"
    )
    payload = bytes(range(256))
    amqp.basic_publish(
        exchange, "bin.raw", payload, pika.BasicProperties(content_type="application/octet-stream")
    )
    amqp.basic_publish(exchange, "bin.text", b"plain words", pika.BasicProperties())
    events = {e["event"]["routing_key"]: e["event"] for e in router.wait_ledger(function, 2)}
    assert events["bin.raw"]["isBase64Encoded"] is True
    assert base64.b64decode(events["bin.raw"]["body"]) == payload
    assert events["bin.text"]["isBase64Encoded"] is False
    assert events["bin.text"]["body"] == "plain words"


def test_records_say_queued_until_a_slot_is_free(router: Router) -> None:
    function = unique("slots")
    router.put_function(
        function, handler="testfns:slow", isolation="thread", concurrency={"min": 0, "max": 1}
    )
    ids = [
        router.http.post(
            f"/api/v1/functions/{function}/invoke?mode=async", json={"sleep": 1.5}
        ).json()["invocation_id"]
        for _ in range(3)
    ]
    time.sleep(0.8)  # the first is running; the others wait for its slot
    statuses = sorted(router.http.get(f"/api/v1/invocations/{i}").json()["status"] for i in ids)
    assert statuses == ["queued", "queued", "running"]
    records = [router.invocation(i, ("succeeded",), timeout=30) for i in ids]
    starts = sorted(r["started_at"] for r in records)
    assert starts[1] - starts[0] >= 1.0  # started when a slot was free, not when received


def test_an_expired_event_is_dead_lettered_as_expired(router: Router) -> None:
    function = unique("expire")
    router.put_function(
        function,
        handler="testfns:fail",
        isolation="thread",
        retry={"max_attempts": 5, "backoff_s": 2, "max_event_age_s": 1},
    )
    queued = router.http.post(f"/api/v1/functions/{function}/invoke?mode=async", json={})
    record = router.invocation(queued.json()["invocation_id"], ("dead_lettered",), timeout=30)
    assert record["error"]["type"] == "EventExpired"
    assert router.metric("router_dead_letters_total", function=function, reason="expired") == 1
