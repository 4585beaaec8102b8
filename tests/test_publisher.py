"""The pipelined publisher: its frames as pamqp reads them, its confirms from the real RabbitMQ."""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
import pamqp.frame
import pytest
from aiormq.abc import ChannelFrame
from pamqp.commands import Basic
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from router.amqp import publisher
from router.amqp.publisher import Publisher
from tests.conftest import AMQP_URL

HEADERS = {"x-router-invocation-id": "inv-1", "x-router-attempt": 2, "x-router-trigger": None}


def frames(data: bytes) -> list[Any]:
    """Every frame in `data`, decoded by pamqp."""
    decoded = []
    while data:
        consumed, _, frame = pamqp.frame.unmarshal(data)
        decoded.append(frame)
        data = data[consumed:]
    return decoded


def test_the_frames_are_a_mandatory_persistent_json_publish() -> None:
    body = b'{"n": 1}' * 10
    data = publisher.publish_method(3, "ns.work", "fn")
    data += publisher.content_header(3, len(body), HEADERS, "event-1")
    data += b"".join(publisher.body_frames(3, body, 32))
    method, header, *bodies = frames(data)
    assert isinstance(method, Basic.Publish)
    assert (method.exchange, method.routing_key, method.mandatory) == ("ns.work", "fn", True)
    assert isinstance(header, ContentHeader)
    assert header.body_size == len(body)
    properties = header.properties
    assert (properties.content_type, properties.delivery_mode) == ("application/json", 2)
    assert properties.message_id == "event-1"
    assert properties.headers == {"x-router-invocation-id": "inv-1", "x-router-attempt": 2}
    assert [len(b.value) for b in bodies] == [32, 32, 16]
    assert b"".join(b.value for b in bodies) == body


def test_plain_values_are_encoded_directly_and_the_rest_by_pamqp() -> None:
    plain = {"s": "é", "i": -(2**40), "t": True, "f": 0.5, "gone": None}
    assert decoded_table(plain) == {"s": "é", "i": -(2**40), "t": True, "f": 0.5}
    # A replayed dead letter carries RabbitMQ's x-death: a list of tables with timestamps.
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    death = {"x-death": [{"count": 1, "time": when, "queue": "q"}], "x-router-attempt": 3}
    table = decoded_table(death)
    assert table["x-router-attempt"] == 3
    assert table["x-death"][0]["queue"] == "q"
    assert table["x-death"][0]["time"].replace(tzinfo=UTC) == when


def decoded_table(headers: dict[str, Any]) -> Any:
    data = publisher.content_header(1, 0, headers, "m")
    (header,) = frames(data)
    return header.properties.headers


def test_names_longer_than_a_short_string_are_refused() -> None:
    with pytest.raises(ValueError, match="short string"):
        publisher.publish_method(1, "x" * 256, "fn")


def run(
    test: Callable[[Publisher, aiormq.Channel, str], Awaitable[None]], timeout_s: float = 5
) -> None:
    async def main() -> None:
        async with queue() as (channel, name):
            await test(Publisher(timeout_s), channel, name)

    asyncio.run(main())


@asynccontextmanager
async def queue() -> AsyncIterator[tuple[aiormq.Channel, str]]:
    """A confirm channel and a fresh quorum queue, published to through the default exchange."""
    name = f"test-{uuid.uuid4().hex[:10]}.publisher"
    async with await aio_pika.connect(AMQP_URL) as connection:
        robust = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await robust.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        channel = await robust.get_underlay_channel()
        assert isinstance(channel, aiormq.Channel)
        try:
            yield channel, name
        finally:
            async with connection.channel() as cleanup:
                await cleanup.queue_delete(name)


async def drain(name: str, count: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        source = await channel.get_queue(name, ensure=False)
        messages = []
        async with asyncio.timeout(10):
            while len(messages) < count:
                message = await source.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.02)
                else:
                    messages.append(message)
        return messages


def test_concurrent_publishes_are_confirmed_and_arrive_in_order() -> None:
    async def test(pipeline: Publisher, channel: aiormq.Channel, name: str) -> None:
        bodies = [f'{{"n": {n}}}'.encode() for n in range(500)]
        futures = [
            pipeline.publish(channel, "", name, b, HEADERS, f"e-{n}") for n, b in enumerate(bodies)
        ]
        await asyncio.gather(*futures)
        assert not channel.confirmations
        assert not channel.message_id_delivery_tag
        messages = await drain(name, len(bodies))
        assert [m.body for m in messages] == bodies
        assert [m.message_id for m in messages] == [f"e-{n}" for n in range(500)]
        ours = {k: v for k, v in messages[7].headers.items() if k.startswith("x-router-")}
        assert ours == {"x-router-invocation-id": "inv-1", "x-router-attempt": 2}
        assert messages[7].delivery_mode == aio_pika.DeliveryMode.PERSISTENT

    run(test)


def test_a_confirmed_publish_is_let_go_well_before_its_timeout() -> None:
    async def test(pipeline: Publisher, channel: aiormq.Channel, name: str) -> None:
        future = pipeline.publish(channel, "", name, b"{}", {}, "once")
        await future
        gone = weakref.ref(future)
        del future
        await asyncio.sleep(3 * publisher.SWEEP_S)
        gc.collect()
        assert gone() is None

    run(test, timeout_s=60)


def test_a_body_larger_than_a_frame_arrives_whole() -> None:
    async def test(pipeline: Publisher, channel: aiormq.Channel, name: str) -> None:
        body = bytes(range(256)) * (3 * channel.max_content_size // 256 + 1)
        await pipeline.publish(channel, "", name, body, {}, "big")
        (message,) = await drain(name, 1)
        assert message.body == body

    run(test)


def test_an_unroutable_publish_fails_alone() -> None:
    async def test(pipeline: Publisher, channel: aiormq.Channel, name: str) -> None:
        lost = pipeline.publish(channel, "", f"{name}.missing", b"{}", {}, "lost")
        kept = pipeline.publish(channel, "", name, b"{}", {}, "kept")
        with pytest.raises(aiormq.exceptions.PublishError):
            await lost
        await kept
        assert [m.message_id for m in await drain(name, 1)] == ["kept"]

    run(test)


def test_a_full_write_queue_delays_the_batch_without_losing_it() -> None:
    async def test(pipeline: Publisher, channel: aiormq.Channel, name: str) -> None:
        heartbeat = ChannelFrame.marshall(0, [Heartbeat()])
        while not channel.write_queue.full():
            channel.write_queue.put_nowait(heartbeat)
        await asyncio.gather(
            *(pipeline.publish(channel, "", name, b"{}", {}, f"e-{n}") for n in range(5))
        )
        assert [m.message_id for m in await drain(name, 5)] == [f"e-{n}" for n in range(5)]

    run(test)


def test_a_confirm_that_does_not_come_in_time_is_a_timeout() -> None:
    async def test(pipeline: Publisher, channel: aiormq.Channel, name: str) -> None:
        # No broker confirms within the same loop turn: a timeout of 0 always expires first.
        with pytest.raises(TimeoutError):
            await pipeline.publish(channel, "", name, b"{}", {}, "late")

    run(test, timeout_s=0)


def test_a_closed_channel_fails_the_publish() -> None:
    async def test(pipeline: Publisher, channel: aiormq.Channel, name: str) -> None:
        await channel.close()
        with pytest.raises(ConnectionError):
            pipeline.publish(channel, "", name, b"{}", {}, "closed")

    run(test)
