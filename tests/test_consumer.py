"""The consumer applying settlements against the real RabbitMQ: a retry's copy goes through its
delay tier and comes back, a dead letter's copy reaches the dead-letter queue before the
delivery is acked, and a copy RabbitMQ does not confirm leaves the delivery in the queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from router.amqp import ACK, Broker, Consumers, Copy, DeadLetter, Delivery, Retry, Settlement
from router.metrics import Metrics
from router.names import Names
from router.registry import Snapshot
from router.specs import FunctionSpec
from tests.conftest import AMQP_URL, cleanup

FUNCTION = "fn"


class Scripted:
    """Settles the n-th delivery as `script(n, delivery)` says; keeps what it was handed."""

    def __init__(self, script: Callable[[int, Delivery], Settlement]) -> None:
        self.deliveries: list[Delivery] = []
        self._script = script
        self._arrived = asyncio.Condition()

    async def handle(self, function: str, delivery: Delivery) -> Settlement:
        async with self._arrived:
            self.deliveries.append(delivery)
            self._arrived.notify_all()
        return self._script(len(self.deliveries), delivery)

    async def handed(self, count: int, timeout_s: float = 10) -> None:
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: len(self.deliveries) >= count)


@asynccontextmanager
async def consuming(handler: Scripted) -> AsyncIterator[Broker]:
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    broker = Broker(AMQP_URL, Names(namespace), 5.0, Metrics())
    consumers = Consumers(broker, handler)
    await broker.connect()
    try:
        await consumers.reconcile(Snapshot(functions={FUNCTION: FunctionSpec(handler="h:h")}))
        yield broker
    finally:
        await consumers.stop()
        await broker.close()
        cleanup(namespace)


def copy_of(delivery: Delivery, function: str = FUNCTION) -> Copy:
    return Copy(function, delivery.body, {"x-copy": True}, delivery.message_id or "m")


async def settled(broker: Broker, *, dead_letters: int) -> None:
    """The function's queue empty (nothing unacked comes back: the channel is still open, so a
    passive declare counts ready ones only) and `dead_letters` in its dead-letter queue."""
    async with asyncio.timeout(10):
        while True:
            ready = (await broker.queue_state(FUNCTION)).ready
            dead = (await broker.queue_state(FUNCTION, dead_letters=True)).ready
            if (ready, dead) == (0, dead_letters):
                return
            await asyncio.sleep(0.05)


def test_a_retry_copy_waits_in_its_delay_tier_and_comes_back() -> None:
    def script(n: int, delivery: Delivery) -> Settlement:
        return Retry(copy_of(delivery), delay_ms=100) if n == 1 else ACK

    async def main() -> None:
        handler = Scripted(script)
        async with consuming(handler) as broker:
            await broker.publish(FUNCTION, b'{"n": 1}', {}, "event-1")
            await handler.handed(2)
            first, second = handler.deliveries
            assert second.body == first.body
            assert second.headers.get("x-copy") is True  # the copy, not a redelivery
            assert not second.redelivered
            await settled(broker, dead_letters=0)
            retries = broker.metrics.registry.get_sample_value(
                "router_retries_total", {"function": FUNCTION}
            )
            assert retries == 1

    asyncio.run(main())


def test_a_dead_letter_is_confirmed_then_recorded_then_acked() -> None:
    recorded: list[bool] = []

    async def record() -> None:
        recorded.append(True)

    def script(n: int, delivery: Delivery) -> Settlement:
        return DeadLetter(copy_of(delivery), "failed", then=record)

    async def main() -> None:
        handler = Scripted(script)
        async with consuming(handler) as broker:
            await broker.publish(FUNCTION, b"{}", {}, "event-1")
            await handler.handed(1)
            await settled(broker, dead_letters=1)
            assert recorded == [True]

    asyncio.run(main())


def test_a_copy_that_is_not_confirmed_leaves_the_delivery_in_the_queue() -> None:
    def script(n: int, delivery: Delivery) -> Settlement:
        # The first copy is unroutable (no queue is bound for it): RabbitMQ returns it.
        return DeadLetter(copy_of(delivery, "nobody"), "failed") if n == 1 else ACK

    async def main() -> None:
        handler = Scripted(script)
        async with consuming(handler) as broker:
            await broker.publish(FUNCTION, b"{}", {}, "event-1")
            await handler.handed(2)
            assert handler.deliveries[1].redelivered  # requeued, not acked
            await settled(broker, dead_letters=0)

    asyncio.run(main())
