"""The connection supervisor against the real RabbitMQ: after the broker closes our connection,
closes a consumer's channel, or cancels a consumer (its queue deleted), the consumer consumes
again and the publishing channel publishes again, with nothing asking it to but the supervisor.
Only this test's own connection is closed (by its connection name), never the broker."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from router.amqp import ACK, Broker, Consumers, Delivery, Settlement
from router.metrics import Metrics
from router.names import Names
from router.registry import Snapshot
from router.specs import FunctionSpec
from tests.conftest import AMQP_URL, cleanup

FUNCTION = "fn"
RECONNECT_S = 20  # aio-pika reconnects every 5 s; a loaded machine takes longer


class Recorder:
    """The dispatcher's place: records each delivery's body and acks it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._arrived = asyncio.Condition()

    async def handle(self, function: str, delivery: Delivery) -> Settlement:
        async with self._arrived:
            self.bodies.append(delivery.body)
            self._arrived.notify_all()
        return ACK

    async def received(self, body: bytes, timeout_s: float = 5) -> None:
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: body in self.bodies)


@asynccontextmanager
async def consuming(name: str) -> AsyncIterator[tuple[Broker, Consumers, Recorder]]:
    broker = Broker(f"{AMQP_URL}?name={name}", Names(name), 5.0, Metrics())
    recorder = Recorder()
    consumers = Consumers(broker, recorder)
    await broker.connect()
    try:
        await consumers.reconcile(Snapshot(functions={FUNCTION: FunctionSpec(handler="h:h")}))
        assert consumers.functions() == [FUNCTION]
        yield broker, consumers, recorder
    finally:
        await consumers.stop()
        await broker.close()


def run(test: Callable[[Broker, Consumers, Recorder, str], Awaitable[None]]) -> None:
    name = f"test-{uuid.uuid4().hex[:10]}"

    async def main() -> None:
        async with consuming(name) as (broker, consumers, recorder):
            await test(broker, consumers, recorder, name)

    try:
        asyncio.run(main())
    finally:
        cleanup(name)


async def published_and_consumed(broker: Broker, recorder: Recorder, body: bytes) -> None:
    """Publish (retrying while the publishing channel is being reopened) and see it consumed."""
    async with asyncio.timeout(RECONNECT_S):
        while True:
            try:
                await broker.publish(FUNCTION, body, {}, body.decode())
                break
            except Exception:
                await asyncio.sleep(0.2)
    await recorder.received(body)


def rabbitmqctl(*args: str) -> str:
    try:
        result = subprocess.run(
            ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60
        )
    except OSError:
        pytest.skip("rabbitmqctl is not available")
    assert result.returncode == 0, result.stderr
    return result.stdout


def close_connection(name: str) -> None:
    """Close the broker side of the connection named `name` (and of no other)."""
    listed = rabbitmqctl("list_connections", "pid", "client_properties").splitlines()
    pids = [line.split("\t")[0] for line in listed if f'"{name}"' in line]
    assert len(pids) == 1, f"connection {name} not listed once: {listed}"
    rabbitmqctl("close_connection", pids[0], "closed by a test")


def test_consuming_and_publishing_resume_after_the_broker_closes_the_connection() -> None:
    async def test(broker: Broker, _: Consumers, recorder: Recorder, name: str) -> None:
        await published_and_consumed(broker, recorder, b"before")
        await asyncio.to_thread(close_connection, name)
        await published_and_consumed(broker, recorder, b"after")

    run(test)


def test_consuming_resumes_after_rabbitmq_cancels_the_consumer() -> None:
    async def test(broker: Broker, _: Consumers, recorder: Recorder, name: str) -> None:
        await published_and_consumed(broker, recorder, b"before")
        queue = broker.names.queue(FUNCTION)
        channel = await broker.supervisor.channel()
        await channel.queue_delete(queue)  # RabbitMQ cancels its consumers
        await channel.close()
        # The consumer declares its queue again and consumes from it.
        await published_and_consumed(broker, recorder, b"after")
        assert (await broker.queue_state(FUNCTION)).consumers == 1

    run(test)


def test_a_consumer_channel_closed_by_a_channel_error_is_reopened() -> None:
    async def test(broker: Broker, consumers: Consumers, recorder: Recorder, name: str) -> None:
        await published_and_consumed(broker, recorder, b"before")
        (consumer,) = consumers._consumers.values()
        channel = consumer._channel
        assert channel is not None
        await channel.basic_ack(10_000)  # an unknown tag: RabbitMQ closes the channel
        with contextlib.suppress(Exception):
            await asyncio.wait_for(channel.closing, 5)
        assert channel.is_closed
        await published_and_consumed(broker, recorder, b"after")
        assert consumer._channel is not channel

    run(test)
