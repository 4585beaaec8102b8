"""Batched acknowledgements against the real RabbitMQ: what is acked is gone, what is nacked or
still running comes back when the channel closes, and no frame names a settled tag (RabbitMQ
would close the channel with PRECONDITION_FAILED)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from router.amqp.acks import STRAGGLER_S, Acks
from tests.conftest import AMQP_URL

COUNT = 40


def run(scenario: Callable[[AbstractRobustConnection], Awaitable[None]]) -> None:
    async def main() -> None:
        connection = await aio_pika.connect_robust(AMQP_URL)
        try:
            await scenario(connection)
        finally:
            await connection.close()

    asyncio.run(main())


async def deliveries(
    connection: AbstractRobustConnection, count: int
) -> tuple[str, aio_pika.abc.AbstractChannel, list[AbstractIncomingMessage]]:
    """A fresh quorum queue with `count` messages, all delivered to one unacked consumer."""
    name = f"test-acks-{secrets.token_hex(4)}"
    channel = await connection.channel()
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    for i in range(count):
        await channel.default_exchange.publish(aio_pika.Message(str(i).encode()), name)
    received: list[AbstractIncomingMessage] = []

    async def on_message(message: AbstractIncomingMessage) -> None:
        received.append(message)

    await channel.set_qos(prefetch_count=count)
    await queue.consume(on_message)
    for _ in range(200):
        if len(received) == count:
            break
        await asyncio.sleep(0.01)
    assert len(received) == count
    return name, channel, received


async def left_after_close(
    connection: AbstractRobustConnection, name: str, channel: aio_pika.abc.AbstractChannel
) -> int:
    """Close the consuming channel (unsettled messages return) and count what is in the queue."""
    assert not channel.is_closed, "a settlement frame was refused by RabbitMQ"
    await channel.close()
    async with connection.channel() as check:
        # A quorum queue reports requeued messages a little late, later on a busy machine:
        # the count is taken once it has held still for a third of a second.
        count, steady = -1, 0
        for _ in range(300):
            queue = await check.declare_queue(name, passive=True)
            seen = queue.declaration_result.message_count or 0
            steady = steady + 1 if seen == count else 0
            count = seen
            if steady >= 10:
                break
            await asyncio.sleep(0.033)
        await check.queue_delete(name)
    return int(count)


def test_out_of_order_acks_and_nacks_settle_exactly_what_they_name() -> None:
    run(out_of_order_acks_and_nacks_settle_exactly_what_they_name)


async def out_of_order_acks_and_nacks_settle_exactly_what_they_name(
    connection: AbstractRobustConnection,
) -> None:
    name, channel, received = await deliveries(connection, COUNT)
    acks = Acks(received[0].channel)
    tags = [m.delivery_tag or 0 for m in received]
    order = tags[1::2] + tags[::2]  # evens finish before odds, as concurrent handlers do
    nacked = set(tags[5:10])
    for tag in order:
        if tag in nacked:
            acks.nack(tag)
        else:
            acks.ack(tag)
        if tag % 7 == 0:
            await asyncio.sleep(0)  # some in one loop turn, some across turns
    await acks.close()
    assert await left_after_close(connection, name, channel) == len(nacked)


def test_a_finished_delivery_behind_a_running_one_is_acked_on_its_own() -> None:
    run(a_finished_delivery_behind_a_running_one_is_acked_on_its_own)


async def a_finished_delivery_behind_a_running_one_is_acked_on_its_own(
    connection: AbstractRobustConnection,
) -> None:
    name, channel, received = await deliveries(connection, COUNT)
    acks = Acks(received[0].channel)
    for message in received[1:]:  # the first is still "running"
        acks.ack(message.delivery_tag or 0)
    await asyncio.sleep(STRAGGLER_S * 10)
    # Without closing the settler: the stragglers were acked individually, so only the running
    # one comes back.
    assert await left_after_close(connection, name, channel) == 1


def test_the_running_delivery_finishing_last_is_acked_too() -> None:
    run(the_running_delivery_finishing_last_is_acked_too)


async def the_running_delivery_finishing_last_is_acked_too(
    connection: AbstractRobustConnection,
) -> None:
    name, channel, received = await deliveries(connection, COUNT)
    acks = Acks(received[0].channel)
    for message in received[1:]:
        acks.ack(message.delivery_tag or 0)
    await asyncio.sleep(STRAGGLER_S * 10)
    acks.ack(received[0].delivery_tag or 0)  # covers nothing already settled: named alone
    await asyncio.sleep(0.05)
    assert await left_after_close(connection, name, channel) == 0
