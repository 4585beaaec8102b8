"""RabbitMQ as the rest of the router sees it: connect, declare, publish confirmed, inspect.

The broker holds the connection supervisor, the topology, and the one publishing channel: a
subscriber of the supervisor, opened again with the namespace's exchanges on every reconnect.
It also holds the namespace's seal (`router.seal`): whatever publishes an envelope seals it with
`broker.seal`, and the keys are read before anything is published or consumed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiormq
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from redis.asyncio import Redis

from router.amqp.connection import Supervisor
from router.amqp.errors import BrokerError
from router.amqp.publisher import Publisher
from router.amqp.topology import QueueState, Topology
from router.metrics import Metrics
from router.names import Names
from router.seal import Seal
from router.specs import AmqpTrigger

log = logging.getLogger("router.amqp")
MAX_MESSAGE_ID = 255  # bytes: an AMQP short string


class Broker:
    def __init__(
        self,
        url: str,
        names: Names,
        publish_timeout_s: float,
        metrics: Metrics,
        redis: Redis | None = None,
    ) -> None:
        self._metrics = metrics
        self._names = names
        self.seal = Seal(redis, names)
        self.supervisor = Supervisor(url, metrics)
        self.topology = Topology(self.supervisor, names)
        self._keeping: asyncio.Task[None] | None = None
        self._pipeline = Publisher(publish_timeout_s)
        # One channel: the Publisher sends each loop turn's publishes in one write, which more
        # channels would only split (measured: 1 channel took the least CPU per publish).
        self._publishing: aiormq.Channel | None = None

    def __repr__(self) -> str:
        return "<the publishing channel>"  # as the supervisor names the subscriber in its log

    @property
    def names(self) -> Names:
        return self._names

    @property
    def metrics(self) -> Metrics:
        return self._metrics

    @property
    def connected(self) -> bool:
        """Connected now; false while the connection is between reconnects."""
        return self.supervisor.connected

    async def connect(self) -> None:
        """Connect once; raises when the broker cannot be reached (the caller retries).

        The envelope keys are read first: nothing is published or consumed before they are.
        """
        await self.seal.load()
        if self._keeping is None:
            self._keeping = asyncio.create_task(self.seal.keep(), name="envelope-keys")
        await self.supervisor.connect()
        await self.reopen()
        self.supervisor.subscribe(self)

    async def reopen(self) -> None:
        """The publishing channel, with confirms (and returns raised: unroutable must be an
        error, not a silent "confirmed"), and the exchanges it publishes to."""
        if self._publishing is not None and not self._publishing.is_closed:
            return  # open already (told twice: a channel closed by a reconnect)
        channel = await self.supervisor.channel(self, confirms=True)
        await self.topology.declare_exchanges(channel)
        self._publishing = channel

    async def declare_function(self, function: str) -> None:
        await self.topology.declare_function(function)

    async def bind(self, trigger: AmqpTrigger) -> None:
        await self.topology.bind(trigger)

    async def unbind(self, trigger: AmqpTrigger) -> None:
        await self.topology.unbind(trigger)

    async def queue_state(self, function: str, *, dead_letters: bool = False) -> QueueState:
        return await self.topology.queue_state(function, dead_letters=dead_letters)

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
        channel = self._publishing
        if not self.connected or channel is None or channel.is_closed:
            raise BrokerError("RabbitMQ is not connected")
        message_id = amqp_message_id(message_id)
        if delay_ms:
            exchange = await self.topology.delay_exchange(delay_ms)
        elif dead_letter:
            exchange = self._names.dead_letter_exchange
        else:
            exchange = self._names.work_exchange
        started = time.perf_counter()
        try:
            await self._pipeline.publish(channel, exchange, function, body, headers, message_id)
        except (TimeoutError, asyncio.CancelledError, ValueError, *CONNECTION_EXCEPTIONS) as exc:
            if isinstance(exc, asyncio.CancelledError) and _cancelling():
                raise
            raise BrokerError(f"RabbitMQ did not confirm the message: {exc!r}") from exc
        self._metrics.confirmed(time.perf_counter() - started)

    async def close(self) -> None:
        if self._keeping is not None:
            self._keeping.cancel()
            self._keeping = None
        await self.supervisor.close()


def amqp_message_id(event_id: str) -> str:
    """The event id as an AMQP message id, or its digest when it is longer than the 255 bytes
    AMQP allows (a sender's delivery id may be; the envelope carries it whole)."""
    if len(event_id) <= MAX_MESSAGE_ID // 4 or len(event_id.encode()) <= MAX_MESSAGE_ID:
        return event_id
    return "blake2b:" + hashlib.blake2b(event_id.encode(), digest_size=32).hexdigest()


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
