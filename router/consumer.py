"""Consumers of the function queues: one channel per function, prefetch a small multiple of what
the function can run at once (`ROUTER_PREFETCH_MULTIPLIER`, 2 by default, as Dramatiq's): the
next message is already here when a run ends, instead of a broker round trip away, and the rest
stay in the queue for other replicas."""

from __future__ import annotations

import asyncio
import logging

from aio_pika.abc import AbstractRobustChannel
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aiormq.abc import DeliveredMessage

from router.acks import Acks
from router.broker import Broker
from router.dispatcher import Dispatcher
from router.names import Names
from router.registry import Snapshot

log = logging.getLogger("router.consumer")


class Consumer:
    def __init__(self, function: str, broker: Broker, dispatcher: Dispatcher, names: Names) -> None:
        self.function = function
        self.prefetch = 0
        self._broker = broker
        self._dispatcher = dispatcher
        self._names = names
        self._channel: AbstractRobustChannel | None = None
        self._tag: str | None = None
        self._acks: Acks | None = None

    async def start(self, prefetch: int) -> None:
        channel = await self._broker.connection().channel()
        self._channel = channel
        await channel.set_qos(prefetch_count=prefetch)
        self.prefetch = prefetch
        await channel.get_queue(self._names.queue(self.function), ensure=True)  # exists?
        await self._consume()
        # Consuming below aio-pika, its robust channel cannot restore us: do it on reopen.
        channel.reopen_callbacks.add(self._on_reopen)
        log.info("consuming %s (prefetch %d)", self.function, prefetch)

    async def _consume(self) -> None:
        """basic.consume on the channel below aio-pika: its per-message IncomingMessage and
        extra task cost more than the rest of a small handler's dispatch."""
        if self._channel is None:
            return
        underlay = await self._channel.get_underlay_channel()
        consume_ok = await underlay.basic_consume(
            self._names.queue(self.function), self._on_message, no_ack=False
        )
        self._tag = consume_ok.consumer_tag

    async def _on_reopen(self, *_: object) -> None:
        try:
            await self._consume()
        except CONNECTION_EXCEPTIONS as exc:
            log.warning("consuming %s again after a reconnect failed: %s", self.function, exc)

    async def _on_message(self, message: DeliveredMessage) -> None:
        await self._dispatcher.handle(self.function, message, self._acks_of(message))

    def _acks_of(self, message: DeliveredMessage) -> Acks:
        """The settler of the channel this message came on (a new one after a reconnect)."""
        channel = message.channel
        if self._acks is None or self._acks.channel is not channel:
            self._acks = Acks(channel)
        return self._acks

    async def set_prefetch(self, prefetch: int) -> None:
        if self._channel is not None and prefetch != self.prefetch:
            await self._channel.set_qos(prefetch_count=prefetch)
            self.prefetch = prefetch

    async def cancel(self) -> None:
        """Stop new deliveries; what is in flight can still be settled on the open channel."""
        tag, self._tag = self._tag, None
        try:
            if self._channel is not None:
                self._channel.reopen_callbacks.discard(self._on_reopen)
                if tag is not None and not self._channel.is_closed:
                    underlay = await self._channel.get_underlay_channel()
                    await underlay.basic_cancel(tag)
        except CONNECTION_EXCEPTIONS as exc:
            log.warning("cancelling consumer of %s: %s", self.function, exc)

    async def stop(self) -> None:
        """Stop receiving; messages not yet settled return to the queue when the channel closes."""
        await self.cancel()
        if self._acks is not None:
            await self._acks.close()  # what finished is acknowledged, not redelivered
        try:
            if self._channel is not None:
                await self._channel.close()
        except CONNECTION_EXCEPTIONS as exc:
            log.warning("stopping consumer of %s: %s", self.function, exc)


class Consumers:
    """Keeps one consumer per registered function, following registry changes."""

    def __init__(
        self, broker: Broker, dispatcher: Dispatcher, names: Names, prefetch_multiplier: int = 1
    ) -> None:
        self._broker = broker
        self._dispatcher = dispatcher
        self._names = names
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
                await self._broker.declare_function(function)
                consumer = Consumer(function, self._broker, self._dispatcher, self._names)
                await consumer.start(prefetch)
                self._consumers[function] = consumer
            else:
                await consumer.set_prefetch(prefetch)
        except CONNECTION_EXCEPTIONS as exc:
            log.error("cannot consume %s yet: %s", function, exc)

    async def restore(self, function: str, concurrency: int) -> None:
        """A queue of ours has had no consumer at all for a while: start ours again (aio-pika's
        robust channels do not always restore consumers after a broker restart)."""
        async with self._lock:
            if not self._broker.connected:
                return
            consumer = self._consumers.pop(function, None)
            log.warning("queue of %s has no consumer; starting ours again", function)
            if consumer is not None:
                await consumer.stop()
            await self._ensure(function, concurrency * self._multiplier)

    async def cancel(self) -> None:
        async with self._lock:
            await asyncio.gather(*(c.cancel() for c in self._consumers.values()))

    async def stop(self) -> None:
        async with self._lock:
            for consumer in self._consumers.values():
                await consumer.stop()
            self._consumers.clear()
