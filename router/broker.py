"""RabbitMQ: the connection, the topology each function needs, and confirmed publishing.

Per function: a durable quorum queue bound to the namespace's work exchange by the function's
name, and a dead-letter queue beside it (declared first: a missing dead-letter exchange drops
messages silently). An amqp trigger is one more binding from the user's exchange to that queue.

The broker also holds the namespace's seal (`router.seal`): whatever publishes an envelope seals
it with `broker.seal`, and the keys are read before anything is published or consumed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, AMQPError, ChannelNotFoundEntity
from redis.asyncio import Redis

from router.metrics import Metrics
from router.names import Names
from router.publisher import Publisher
from router.seal import Seal
from router.specs import AmqpTrigger

log = logging.getLogger("router.broker")

# Bounded redeliveries of a message whose consumer died mid-run (a crash loop would otherwise
# spin forever); past it RabbitMQ dead-letters the message to the function's DLQ.
DELIVERY_LIMIT = 20
MAX_MESSAGE_ID = 255  # bytes: an AMQP short string


@dataclass(frozen=True)
class QueueState:
    ready: int
    consumers: int


class BrokerError(Exception):
    """RabbitMQ could not do what was asked: not connected, not confirmed, or refused."""


class TopologyError(BrokerError):
    """A declaration RabbitMQ refused, such as an exchange name reserved by the broker."""


class Broker:
    def __init__(
        self,
        url: str,
        names: Names,
        publish_timeout_s: float,
        metrics: Metrics,
        redis: Redis | None = None,
    ) -> None:
        self._url = url
        self._metrics = metrics
        self._names = names
        self.seal = Seal(redis, names)
        self._keeping: asyncio.Task[None] | None = None
        self._pipeline = Publisher(publish_timeout_s)
        self._connection: AbstractRobustConnection | None = None
        self._publishing: AbstractRobustChannel | None = None
        self._inspector: AbstractChannel | None = None
        self._delays: set[int] = set()

    @property
    def names(self) -> Names:
        return self._names

    @property
    def connected(self) -> bool:
        """Connected now; false while a robust connection is between reconnects."""
        connection = self._connection
        return connection is not None and connection.connected.is_set()

    async def connect(self) -> None:
        """Connect once; raises when the broker cannot be reached (the caller retries).

        The envelope keys are read first: nothing is published or consumed before they are.
        """
        await self.seal.load()
        if self._keeping is None:
            self._keeping = asyncio.create_task(self.seal.keep(), name="envelope-keys")
        connection = await aio_pika.connect_robust(self._url, timeout=5)
        # Confirms, and returns raised: unroutable must be an error, not a silent "confirmed".
        # One channel: the Publisher sends each loop turn's publishes in one write, which more
        # channels would only split (measured: 1 channel took the least CPU per publish).
        publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
        # Declared through a robust channel so a reconnect declares them again.
        for exchange in (self._names.work_exchange, self._names.dead_letter_exchange):
            await publishing.declare_exchange(exchange, aio_pika.ExchangeType.DIRECT, durable=True)
        self._connection, self._publishing = connection, publishing
        connection.reconnect_callbacks.add(self._reconnected)
        log.info("connected to RabbitMQ")

    def _reconnected(self, *_: object) -> None:
        self._metrics.reconnects.inc()
        log.warning("reconnected to RabbitMQ")

    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BrokerError("RabbitMQ is not connected")
        return self._connection

    async def declare_function(self, function: str) -> None:
        async with self.connection().channel() as channel:
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
            async with self.connection().channel() as channel:
                queue = await channel.get_queue(self._names.queue(trigger.function), ensure=True)
                await queue.bind(trigger.exchange, routing_key=trigger.routing_key)
        except ChannelNotFoundEntity as exc:
            raise TopologyError(f"RabbitMQ refused the binding: {exc}") from exc
        except AMQPError as exc:
            raise TopologyError(f"RabbitMQ refused exchange {trigger.exchange!r}: {exc}") from exc

    async def _ensure_exchange(self, trigger: AmqpTrigger) -> None:
        try:
            async with self.connection().channel() as channel:
                await channel.declare_exchange(trigger.exchange, passive=True)
                return
        except ChannelNotFoundEntity:
            pass
        async with self.connection().channel() as channel:
            await channel.declare_exchange(trigger.exchange, trigger.exchange_type, durable=True)

    async def unbind(self, trigger: AmqpTrigger) -> None:
        async with self.connection().channel() as channel:
            queue = await channel.get_queue(self._names.queue(trigger.function), ensure=False)
            await queue.unbind(trigger.exchange, routing_key=trigger.routing_key)

    async def _delay_exchange(self, tier_ms: int) -> str:
        """The tier's fanout exchange and TTL queue, declared on first use. The message keeps
        its routing key (the function), so expiry dead-letters it into the function's queue."""
        name = self._names.delay(tier_ms)
        if tier_ms in self._delays:
            return name
        channel = self._publishing
        if channel is None:
            raise BrokerError("RabbitMQ is not connected")
        try:
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

    async def publish(
        self,
        function: str,
        body: bytes,
        headers: Mapping[str, Any],
        message_id: str,
        *,
        dead_letter: bool = False,
        delay_ms: int = 0,
    ) -> None:
        """Publish persistently and wait for RabbitMQ's confirm; raise BrokerError otherwise.

        `delay_ms` (a retry tier) parks the message in that tier's queue first.
        """
        if not self.connected:
            raise BrokerError("RabbitMQ is not connected")
        message_id = amqp_message_id(message_id)
        if delay_ms:
            exchange = await self._delay_exchange(delay_ms)
        elif dead_letter:
            exchange = self._names.dead_letter_exchange
        else:
            exchange = self._names.work_exchange
        started = time.perf_counter()
        try:
            channel = await self._publishing_channel().get_underlay_channel()
            assert isinstance(channel, aiormq.Channel)  # what aio-pika opens underneath
            await self._pipeline.publish(channel, exchange, function, body, headers, message_id)
        except (TimeoutError, asyncio.CancelledError, ValueError, *CONNECTION_EXCEPTIONS) as exc:
            if isinstance(exc, asyncio.CancelledError) and _cancelling():
                raise
            raise BrokerError(f"RabbitMQ did not confirm the message: {exc!r}") from exc
        self._metrics.child(self._metrics.confirm_latency).observe(time.perf_counter() - started)

    def _publishing_channel(self) -> AbstractRobustChannel:
        """The publishing channel, if open (one closed by a channel error is reopening)."""
        channel = self._publishing
        if channel is None or channel.is_closed:
            raise BrokerError("RabbitMQ is not connected")
        return channel

    async def queue_state(self, function: str, *, dead_letters: bool = False) -> QueueState:
        """Ready messages (passive declare counts no unacked ones) and consumers.

        Declared on the underlying aiormq channel: aio-pika's robust channel answers a repeated
        passive declare from its cache, so the count would never change.
        """
        if self._inspector is None or self._inspector.is_closed:
            self._inspector = await self.connection().channel()
        channel = await self._inspector.get_underlay_channel()
        name = (self._names.dead_letter_queue if dead_letters else self._names.queue)(function)
        result = await channel.queue_declare(name, passive=True)
        return QueueState(int(result.message_count or 0), int(result.consumer_count or 0))

    async def close(self) -> None:
        if self._keeping is not None:
            self._keeping.cancel()
            self._keeping = None
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


def amqp_message_id(event_id: str) -> str:
    """The event id as an AMQP message id, or its digest when it is longer than the 255 bytes
    AMQP allows (a sender's delivery id may be; the envelope carries it whole)."""
    if len(event_id) <= MAX_MESSAGE_ID // 4 or len(event_id.encode()) <= MAX_MESSAGE_ID:
        return event_id
    return "blake2b:" + hashlib.blake2b(event_id.encode(), digest_size=32).hexdigest()


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
