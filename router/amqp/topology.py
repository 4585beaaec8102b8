"""What the router declares on RabbitMQ, and what it reads back about its queues.

Per function: a durable quorum queue bound to the namespace's work exchange by the function's
name, and a dead-letter queue beside it (declared first: a missing dead-letter exchange drops
messages silently). An amqp trigger is one more binding from the user's exchange to that queue.
A retry waits in a delay tier: a fanout exchange and a queue whose TTL dead-letters it back to
the work exchange, under its routing key (the function).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractQueue
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, AMQPError, ChannelNotFoundEntity

from router.amqp.connection import Supervisor
from router.amqp.errors import BrokerError, TopologyError
from router.names import Names
from router.specs import AmqpTrigger

# Bounded redeliveries of a message whose consumer died mid-run (a crash loop would otherwise
# spin forever); past it RabbitMQ dead-letters the message to the function's DLQ.
DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class QueueState:
    ready: int
    consumers: int


class Topology:
    def __init__(self, supervisor: Supervisor, names: Names) -> None:
        self._supervisor = supervisor
        self._names = names
        self._delays: set[int] = set()
        self._inspector: aiormq.Channel | None = None

    async def declare_exchanges(self, channel: aiormq.Channel) -> None:
        """The namespace's work and dead-letter exchanges: on every (re)connect."""
        for exchange in (self._names.work_exchange, self._names.dead_letter_exchange):
            await channel.exchange_declare(exchange, exchange_type="direct", durable=True)
        # A broker that came back empty has no delay tiers either: declared again on first use.
        self._delays.clear()

    async def declare_function(self, function: str) -> None:
        async with self._supervisor.connection().channel() as channel:
            dlx = await channel.declare_exchange(
                self._names.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
            )
            dlq = await channel.declare_queue(
                self._names.dead_letter_queue(function),
                durable=True,
                arguments={"x-queue-type": "quorum"},
            )
            await dlq.bind(dlx, routing_key=function)
            queue = await channel.declare_queue(
                self._names.queue(function), durable=True, arguments=self._queue_arguments(function)
            )
            await queue.bind(self._names.work_exchange, routing_key=function)

    def _queue_arguments(self, function: str) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self._names.dead_letter_exchange,
            "x-dead-letter-routing-key": function,
            "x-delivery-limit": DELIVERY_LIMIT,
        }

    async def bind(self, trigger: AmqpTrigger) -> None:
        """Bind the function's queue to the user's exchange, declaring the exchange if missing.

        An existing exchange is used as it is (its type and durability are the owner's choice).
        """
        try:
            await self._ensure_exchange(trigger)
            async with self._supervisor.connection().channel() as channel:
                queue = await channel.get_queue(self._names.queue(trigger.function), ensure=True)
                await queue.bind(trigger.exchange, routing_key=trigger.routing_key)
        except ChannelNotFoundEntity as exc:
            raise TopologyError(f"RabbitMQ refused the binding: {exc}") from exc
        except AMQPError as exc:
            raise TopologyError(f"RabbitMQ refused exchange {trigger.exchange!r}: {exc}") from exc

    async def _ensure_exchange(self, trigger: AmqpTrigger) -> None:
        try:
            async with self._supervisor.connection().channel() as channel:
                await channel.declare_exchange(trigger.exchange, passive=True)
                return
        except ChannelNotFoundEntity:
            pass
        async with self._supervisor.connection().channel() as channel:
            await channel.declare_exchange(trigger.exchange, trigger.exchange_type, durable=True)

    async def unbind(self, trigger: AmqpTrigger) -> None:
        async with self._supervisor.connection().channel() as channel:
            queue = await channel.get_queue(self._names.queue(trigger.function), ensure=False)
            await queue.unbind(trigger.exchange, routing_key=trigger.routing_key)

    async def delay_exchange(self, tier_ms: int) -> str:
        """The tier's exchange, its exchange and TTL queue declared on first use."""
        name = self._names.delay(tier_ms)
        if tier_ms in self._delays:
            return name
        try:
            async with self._supervisor.connection().channel() as channel:
                exchange = await channel.declare_exchange(
                    name, aio_pika.ExchangeType.FANOUT, durable=True
                )
                queue = await channel.declare_queue(
                    name,
                    durable=True,
                    arguments={
                        "x-message-ttl": tier_ms,
                        "x-dead-letter-exchange": self._names.work_exchange,
                    },
                )
                await queue.bind(exchange)
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerError(f"cannot declare delay tier {tier_ms} ms: {exc!r}") from exc
        self._delays.add(tier_ms)
        return name

    async def queue_state(self, function: str, *, dead_letters: bool = False) -> QueueState:
        """Ready messages (a passive declare counts no unacked ones) and consumers, on a plain
        channel of its own (a robust one would answer from its cache: the count never changed;
        a passive declare of a missing queue closes the channel: the next call opens one)."""
        if self._inspector is None or self._inspector.is_closed:
            self._inspector = await self._supervisor.channel()
        name = (self._names.dead_letter_queue if dead_letters else self._names.queue)(function)
        result = await self._inspector.queue_declare(name, passive=True)
        return QueueState(int(result.message_count or 0), int(result.consumer_count or 0))

    @asynccontextmanager
    async def dead_letter_queue(self, function: str) -> AsyncIterator[AbstractQueue]:
        """The function's dead-letter queue on a channel of its own, closed afterwards (what
        was taken from it and not settled returns to it)."""
        async with self._supervisor.connection().channel() as channel:
            yield await channel.get_queue(self._names.dead_letter_queue(function), ensure=True)
