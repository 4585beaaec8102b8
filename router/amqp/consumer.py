"""Consumers of the function queues: one channel per function, prefetch a small multiple of what
the function can run at once (`ROUTER_PREFETCH_MULTIPLIER`, 2 by default, as Dramatiq's): the
next message is already here when a run ends, instead of a broker round trip away, and the rest
stay in the queue for other replicas.

Each consumer is a subscriber of the connection supervisor: after a reconnect, a closed channel
or a cancel from RabbitMQ it declares its queue and consumes again. It hands each message to the
dispatcher as a `Delivery` and applies the `Settlement` it gets back: `_settle` is the only place
a message is acked or requeued, and a retry or a dead letter is acked only once RabbitMQ has
confirmed the copy that replaces it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import aiormq
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from router.amqp.acks import Acks
from router.amqp.broker import Broker
from router.amqp.delivery import Ack, DeadLetter, Delivery, Requeue, Retry, Settlement
from router.amqp.errors import BrokerError
from router.registry import Snapshot

log = logging.getLogger("router.consumer")


class Handler(Protocol):
    async def handle(self, function: str, delivery: Delivery) -> Settlement: ...


class Consumer:
    def __init__(self, function: str, broker: Broker, handler: Handler, prefetch: int) -> None:
        self.function = function
        self.prefetch = prefetch
        self._broker = broker
        self._handler = handler
        self._queue = broker.names.queue(function)
        self._channel: aiormq.Channel | None = None
        self._tag: str | None = None
        self._acks: Acks | None = None
        self._republishing = 0  # settlements waiting for their copy's confirm
        self._republished = asyncio.Event()
        self._republished.set()

    def __repr__(self) -> str:
        return f"<consumer of {self.function}>"

    async def start(self) -> None:
        await self.reopen()
        self._broker.supervisor.subscribe(self)
        log.info("consuming %s (prefetch %d)", self.function, self.prefetch)

    async def reopen(self) -> None:
        """Consume again: on the channel if it is still open (RabbitMQ cancelled the consumer),
        else on a new one. The queue is declared first, in case it is what went away."""
        channel = self._channel
        if channel is not None and not channel.is_closed and self._tag is not None:
            return  # consuming already (told twice: a channel closed by a reconnect)
        await self._broker.declare_function(self.function)
        if channel is None or channel.is_closed:
            channel = await self._broker.supervisor.channel(self)
            await channel.basic_qos(prefetch_count=self.prefetch)
            channel.on_consumer_cancel_callbacks.add(self._cancelled)
            self._channel, self._tag = channel, None
        # basic.consume on a plain channel: aio-pika's per-message IncomingMessage and extra
        # task cost more than the rest of a small handler's dispatch.
        consume_ok = await channel.basic_consume(self._queue, self._on_message, no_ack=False)
        self._tag = consume_ok.consumer_tag

    def _cancelled(self, frame: Basic.Cancel) -> None:
        if frame.consumer_tag == self._tag:
            log.warning("RabbitMQ cancelled the consumer of %s; consuming again", self.function)
            self._tag = None
            self._broker.supervisor.lost(self)

    async def _on_message(self, message: DeliveredMessage) -> None:
        acks = self._acks_of(message.channel)
        settlement = await self._handler.handle(self.function, delivery(message))
        await self._settle(settlement, acks, message.delivery_tag or 0)

    async def _settle(self, settlement: Settlement, acks: Acks, tag: int) -> None:
        """Apply the settlement: the one place a delivery is acked or requeued."""
        if isinstance(settlement, Ack):
            acks.ack(tag)
        elif isinstance(settlement, Requeue):
            acks.nack(tag)
        elif await self._republish(settlement):
            acks.ack(tag)
        else:
            acks.nack(tag)

    async def _republish(self, settlement: Retry | DeadLetter) -> bool:
        """Publish the copy that replaces the delivery; True once RabbitMQ confirmed it."""
        copy, metrics = settlement.copy, self._broker.metrics
        retry = settlement if isinstance(settlement, Retry) else None
        self._republishing += 1
        self._republished.clear()
        try:
            await self._broker.publish(
                copy.function,
                copy.body,
                copy.headers,
                copy.message_id,
                dead_letter=retry is None,
                delay_ms=0 if retry is None else retry.delay_ms,
            )
        except BrokerError as exc:
            log.warning(
                "could not re-publish %s of %s (%s); returning it to the queue",
                copy.message_id,
                copy.function,
                exc,
            )
            return False
        else:
            if isinstance(settlement, Retry):
                metrics.retried(copy.function)
                return True
            metrics.dead_lettered(copy.function, settlement.reason)
            if settlement.dropped:
                metrics.dropped(copy.function, settlement.reason)
            if settlement.then is not None:
                await settlement.then()
            return True
        finally:
            self._republishing -= 1
            if self._republishing == 0:
                self._republished.set()

    def _acks_of(self, channel: aiormq.abc.AbstractChannel) -> Acks:
        """The settler of the channel this message came on (a new one after a reconnect)."""
        if self._acks is None or self._acks.channel is not channel:
            self._acks = Acks(channel)
        return self._acks

    async def set_prefetch(self, prefetch: int) -> None:
        if self._channel is not None and prefetch != self.prefetch:
            await self._channel.basic_qos(prefetch_count=prefetch)
            self.prefetch = prefetch

    async def cancel(self) -> None:
        """Stop new deliveries, for good; what is in flight can still be settled."""
        self._broker.supervisor.unsubscribe(self)
        tag, self._tag = self._tag, None
        try:
            if tag is not None and self._channel is not None and not self._channel.is_closed:
                await self._channel.basic_cancel(tag)
        except CONNECTION_EXCEPTIONS as exc:
            log.warning("cancelling consumer of %s: %s", self.function, exc)

    async def stop(self) -> None:
        """Stop receiving; messages not yet settled return to the queue when the channel closes
        (a retry or dead letter being confirmed is waited for: it settles its delivery)."""
        await self.cancel()
        await self._republished.wait()
        if self._acks is not None:
            await self._acks.close()  # what finished is acknowledged, not redelivered
        try:
            if self._channel is not None:
                await self._channel.close()
        except CONNECTION_EXCEPTIONS as exc:
            log.warning("stopping consumer of %s: %s", self.function, exc)


def delivery(message: DeliveredMessage) -> Delivery:
    properties = message.header.properties
    deliver = message.delivery  # always a Basic.Deliver here: we only consume
    return Delivery(
        body=message.body,
        headers=properties.headers or {},
        exchange=getattr(deliver, "exchange", "") or "",
        routing_key=getattr(deliver, "routing_key", "") or "",
        redelivered=bool(getattr(deliver, "redelivered", False)),
        message_id=properties.message_id,
        correlation_id=properties.correlation_id,
        content_type=properties.content_type,
        timestamp=properties.timestamp,
    )


class Consumers:
    """Keeps one consumer per registered function, following registry changes."""

    def __init__(self, broker: Broker, handler: Handler, prefetch_multiplier: int = 1) -> None:
        self._broker = broker
        self._handler = handler
        self._multiplier = prefetch_multiplier
        self._consumers: dict[str, Consumer] = {}
        self._lock = asyncio.Lock()

    def functions(self) -> list[str]:
        return sorted(self._consumers)

    async def reconcile(self, snapshot: Snapshot) -> None:
        if not self._broker.connected:
            return  # start() reconciles once RabbitMQ is reached
        async with self._lock:
            for name in set(self._consumers) - set(snapshot.functions):
                await self._consumers.pop(name).stop()
            for name, spec in snapshot.functions.items():
                await self._ensure(name, spec.concurrency.replica_cap * self._multiplier)

    async def _ensure(self, function: str, prefetch: int) -> None:
        consumer = self._consumers.get(function)
        try:
            if consumer is None:
                consumer = Consumer(function, self._broker, self._handler, prefetch)
                await consumer.start()
                self._consumers[function] = consumer
            else:
                await consumer.set_prefetch(prefetch)
        except (BrokerError, *CONNECTION_EXCEPTIONS) as exc:
            log.error("cannot consume %s yet: %s", function, exc)
            if consumer is not None and function not in self._consumers:
                await consumer.stop()  # half started: its channel must not linger

    async def cancel(self) -> None:
        async with self._lock:
            await asyncio.gather(*(c.cancel() for c in self._consumers.values()))

    async def stop(self) -> None:
        async with self._lock:
            for consumer in self._consumers.values():
                await consumer.stop()
            self._consumers.clear()
