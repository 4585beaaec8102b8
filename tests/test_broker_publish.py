"""Confirmed publishing and async ingress against the real RabbitMQ and Redis.

Each test runs in its own namespace and removes what it declared.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aio_pika
import pytest
from redis.asyncio import Redis

from router.amqp import Broker, BrokerError
from router.enqueue import Enqueuer
from router.invocations import InvocationStore
from router.metrics import Metrics
from router.names import Names
from tests.conftest import AMQP_URL, REDIS_URL

BODY = b'{"hello": "world"}'
HEADERS = {"x-router-invocation-id": "inv-1", "x-router-attempt": 1, "x-router-trigger": None}


def run(test: Callable[[Broker, Names], Awaitable[None]], *functions: str) -> None:
    async def main() -> None:
        names = Names(f"test-{uuid.uuid4().hex[:10]}")
        async with connected(names, functions) as broker:
            await test(broker, names)

    asyncio.run(main())


@asynccontextmanager
async def connected(names: Names, functions: tuple[str, ...]) -> AsyncIterator[Broker]:
    broker = Broker(AMQP_URL, names, 5.0, Metrics())
    await broker.connect()
    try:
        for function in functions:
            await broker.declare_function(function)
        yield broker
    finally:
        await broker.close()
        await _delete(names, functions)


async def _delete(names: Names, functions: tuple[str, ...]) -> None:
    queues = [q for f in functions for q in (names.queue(f), names.dead_letter_queue(f))]
    connection = await aio_pika.connect(AMQP_URL)
    try:
        for queue in [*queues, names.delay(100)]:
            async with connection.channel() as channel:
                await channel.queue_delete(queue)
        for exchange in (names.work_exchange, names.dead_letter_exchange, names.delay(100)):
            async with connection.channel() as channel:
                await channel.exchange_delete(exchange)
    finally:
        await connection.close()


async def take(queue_name: str) -> aio_pika.abc.AbstractIncomingMessage:
    """The queue's first message, waiting up to 5 s for it."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=False)
        async with asyncio.timeout(5):
            while True:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    return message
                await asyncio.sleep(0.05)
    finally:
        await connection.close()


def test_a_confirmed_message_is_persistent_and_carries_its_envelope() -> None:
    async def test(broker: Broker, names: Names) -> None:
        await broker.publish("fn", BODY, HEADERS, "event-1")
        message = await take(names.queue("fn"))
        assert message.body == BODY
        assert message.message_id == "event-1"
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        # None values are left out: AMQP tables have no null the consumer could read back.
        ours = {k: v for k, v in message.headers.items() if k.startswith("x-router-")}
        assert ours == {"x-router-invocation-id": "inv-1", "x-router-attempt": 1}

    run(test, "fn")


def test_concurrent_publishes_are_each_confirmed_once() -> None:
    async def test(broker: Broker, names: Names) -> None:
        await asyncio.gather(*(broker.publish("fn", BODY, HEADERS, f"e-{n}") for n in range(300)))
        assert (await broker.queue_state("fn")).ready == 300

    run(test, "fn")


def test_an_unroutable_message_is_an_error_not_a_silent_drop() -> None:
    async def test(broker: Broker, names: Names) -> None:
        with pytest.raises(BrokerError):
            await broker.publish("no-such-function", BODY, HEADERS, "event-1")
        # The channel it went out on still works, as do the others.
        await asyncio.gather(*(broker.publish("fn", BODY, HEADERS, f"e-{n}") for n in range(8)))
        assert (await broker.queue_state("fn")).ready == 8

    run(test, "fn")


def test_dead_letters_and_delay_tiers_reach_their_queues() -> None:
    async def test(broker: Broker, names: Names) -> None:
        await broker.publish("fn", BODY, HEADERS, "dead", dead_letter=True)
        assert (await take(names.dead_letter_queue("fn"))).message_id == "dead"
        await broker.publish("fn", BODY, HEADERS, "later", delay_ms=100)
        assert (await take(names.queue("fn"))).message_id == "later"  # after the tier's TTL

    run(test, "fn")


def test_publishing_while_disconnected_is_a_broker_error() -> None:
    async def test(broker: Broker, names: Names) -> None:
        await broker.close()
        with pytest.raises(BrokerError):
            await broker.publish("fn", BODY, HEADERS, "event-1")

    run(test, "fn")


def test_an_accepted_event_has_its_queued_record() -> None:
    async def test(broker: Broker, names: Names) -> None:
        async with store(names) as invocations:
            ingress = Enqueuer(broker, invocations, Metrics())
            invocation_id = await ingress.enqueue("fn", "3", {"n": 1}, "event-1", "hook")
            record = await invocations.get(invocation_id)
            assert record is not None
            assert (record.status, record.function_version, record.event_id, record.trigger) == (
                "queued",
                "3",
                "event-1",
                "hook",
            )
            message = await take(names.queue("fn"))
            assert message.headers["x-router-invocation-id"] == invocation_id
            assert message.headers["x-router-function-version"] == "3"  # version 3 runs it

    run(test, "fn")


def test_a_refused_event_leaves_no_record() -> None:
    async def test(broker: Broker, names: Names) -> None:
        async with store(names) as invocations:
            ingress = Enqueuer(broker, invocations, Metrics())
            with pytest.raises(BrokerError):
                await ingress.enqueue("no-such-function", "1", {}, None, None, invocation_id="x-1")
            await invocations.flush()
            assert await invocations.get("x-1") is None

    run(test)


@asynccontextmanager
async def store(names: Names) -> AsyncIterator[InvocationStore]:
    redis = Redis.from_url(REDIS_URL)
    try:
        yield InvocationStore(redis, names, 60)
    finally:
        keys = [key async for key in redis.scan_iter(f"{names.namespace}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
