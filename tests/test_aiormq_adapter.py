"""The contract of router.amqp.aiormq_adapter with the installed aiormq: the internals it writes
(the channel's write queue, delivery-tag counter, confirmation and return registries) are
there, of the kinds it expects, and aiormq still settles through them what the adapter
registered: acks, returns (unroutable), and numbering shared with aiormq's own basic_publish.
A new aiormq that changes any of them fails here, not in production."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractRobustConnection

from router.amqp import aiormq_adapter, publisher
from tests.conftest import AMQP_URL


@asynccontextmanager
async def channel_and_queue() -> AsyncIterator[tuple[aiormq.Channel, str]]:
    name = f"test-{uuid.uuid4().hex[:10]}.adapter"
    connection = await aio_pika.connect_robust(AMQP_URL)
    try:
        channel = await aiormq_adapter.open_channel(connection, confirms=True)
        await channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
        try:
            yield channel, name
        finally:
            await channel.queue_delete(name)
    finally:
        await connection.close()


def run(test: Callable[[aiormq.Channel, str], Awaitable[None]]) -> None:
    async def main() -> None:
        async with channel_and_queue() as (channel, name):
            await asyncio.wait_for(test(channel, name), 10)

    asyncio.run(main())


def frames(channel: aiormq.Channel, routing_key: str, message_id: str) -> bytes:
    """One mandatory publish to the default exchange, as the publisher encodes it."""
    number = channel.number
    return (
        publisher.publish_method(number, "", routing_key)
        + publisher.content_header(number, 2, {}, message_id)
        + b"".join(publisher.body_frames(number, b"{}", channel.max_content_size))
    )


def test_the_internals_it_writes_are_there() -> None:
    async def test(channel: aiormq.Channel, _: str) -> None:
        assert isinstance(channel, aiormq.Channel)
        assert isinstance(channel.write_queue, asyncio.Queue)
        assert channel.write_queue is channel.connection.write_queue  # the connection's writer
        assert channel.delivery_tag == 0
        assert isinstance(channel.confirmations, dict)
        assert isinstance(channel.message_id_delivery_tag, dict)
        assert isinstance(channel.max_content_size, int)

    run(test)


def test_registered_publishes_are_confirmed_and_forgotten() -> None:
    async def test(channel: aiormq.Channel, name: str) -> None:
        futures = [channel.create_future() for _ in range(3)]
        payload = b"".join(frames(channel, name, f"m-{n}") for n in range(3))
        assert aiormq_adapter.write(channel, payload)
        aiormq_adapter.register_confirms(channel, [(f"m-{n}", f) for n, f in enumerate(futures)])
        assert channel.delivery_tag == 3
        await asyncio.gather(*futures)
        assert not channel.confirmations
        assert not channel.message_id_delivery_tag

    run(test)


def test_an_unroutable_registered_publish_fails_with_publish_error() -> None:
    async def test(channel: aiormq.Channel, name: str) -> None:
        lost, kept = channel.create_future(), channel.create_future()
        payload = frames(channel, f"{name}.missing", "lost") + frames(channel, name, "kept")
        assert aiormq_adapter.write(channel, payload)
        aiormq_adapter.register_confirms(channel, [("lost", lost), ("kept", kept)])
        with pytest.raises(aiormq.exceptions.PublishError):
            await lost
        await kept

    run(test)


def test_aiormq_numbers_its_own_publishes_after_the_registered_ones() -> None:
    async def test(channel: aiormq.Channel, name: str) -> None:
        future = channel.create_future()
        assert aiormq_adapter.write(channel, frames(channel, name, "ours"))
        aiormq_adapter.register_confirms(channel, [("ours", future)])
        confirmation = await channel.basic_publish(
            b"{}", routing_key=name, properties=aiormq.spec.Basic.Properties(message_id="its")
        )
        assert isinstance(confirmation, aiormq.spec.Basic.Ack)
        assert confirmation.delivery_tag == 2
        await future

    run(test)


def test_a_full_write_queue_is_reported_not_waited_for() -> None:
    async def test(channel: aiormq.Channel, name: str) -> None:
        queue = channel.write_queue
        assert queue.maxsize > 0, "an unbounded write queue would never push back"
        heartbeat = aiormq.abc.ChannelFrame.marshall(0, [])
        while not queue.full():
            queue.put_nowait(heartbeat)
        assert not aiormq_adapter.write(channel, frames(channel, name, "later"))

    run(test)


def test_a_channel_is_opened_on_the_robust_connections_transport() -> None:
    async def main() -> None:
        connection: AbstractRobustConnection = await aio_pika.connect_robust(AMQP_URL)
        try:
            channel = await aiormq_adapter.open_channel(connection, confirms=False)
            assert channel.connection is connection.transport.connection  # type: ignore[union-attr]
            assert not channel.publisher_confirms
            await channel.close()
        finally:
            await connection.close()
        with pytest.raises(ConnectionError):
            await aiormq_adapter.open_channel(connection, confirms=False)

    asyncio.run(main())
