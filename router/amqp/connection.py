"""The connection supervisor: one robust connection to RabbitMQ, and the channels on it kept open
for those who subscribe.

aio-pika's robust connection reconnects (every 5 s while the broker is away). Restoring what ran
on it is ours: the consumers and the publisher take plain channels from the supervisor, and when
the connection comes back, or one of their channels is closed under them, or RabbitMQ cancels a
consumer, the supervisor tells that subscriber to open again, and retries until it has. aio-pika
restoring its own robust channels' consumers had gaps (consumers missing after some broker
restarts, none after a server-side cancel); this is the one place that does it now.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustConnection

from router.amqp import aiormq_adapter
from router.amqp.errors import BrokerError
from router.metrics import Metrics

log = logging.getLogger("router.amqp")
RETRY_S = 1.0  # between attempts to open a subscriber again while the connection is up


class Subscriber(Protocol):
    async def reopen(self) -> None:
        """Open (again) what it runs on, from `Supervisor.channel`, and resume. Called after a
        reconnect, after its channel was closed, or when `Supervisor.lost` says so."""


class Supervisor:
    def __init__(self, url: str, metrics: Metrics) -> None:
        self._url = url
        self._metrics = metrics
        self._connection: AbstractRobustConnection | None = None
        self._subscribers: set[Subscriber] = set()
        self._current: dict[Subscriber, aiormq.Channel] = {}
        self._pending: set[Subscriber] = set()
        self._reopening: dict[Subscriber, asyncio.Task[None]] = {}

    @property
    def connected(self) -> bool:
        """Connected now; false while the robust connection is between reconnects."""
        connection = self._connection
        return connection is not None and connection.connected.is_set()

    async def connect(self) -> None:
        """Connect once; raises when the broker cannot be reached (the caller retries). Once
        connected, the robust connection reconnects by itself: a second call keeps it."""
        if self._connection is not None:
            return
        connection = await aio_pika.connect_robust(self._url, timeout=5)
        connection.reconnect_callbacks.add(self._reconnected)
        self._connection = connection
        log.info("connected to RabbitMQ")

    def connection(self) -> AbstractRobustConnection:
        """For short-lived channels (declares, reading a dead-letter queue): aio-pika's API."""
        if self._connection is None:
            raise BrokerError("RabbitMQ is not connected")
        return self._connection

    async def channel(
        self, owner: Subscriber | None = None, *, confirms: bool = False
    ) -> aiormq.Channel:
        """A new channel; the owner's current one, which when closed under it (not by a
        reconnect, which tells every subscriber anyway) makes the owner reopen."""
        try:
            channel = await aiormq_adapter.open_channel(self.connection(), confirms=confirms)
        except (ConnectionError, RuntimeError) as exc:
            raise BrokerError(f"cannot open a channel: {exc!r}") from exc
        if owner is not None:
            self._current[owner] = channel
            channel.closing.add_done_callback(lambda _: self._closed(owner, channel))
        return channel

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """No more reopening; its channel is its own to close."""
        self._subscribers.discard(subscriber)
        self._pending.discard(subscriber)
        self._current.pop(subscriber, None)
        task = self._reopening.pop(subscriber, None)
        if task is not None:
            task.cancel()

    def lost(self, subscriber: Subscriber) -> None:
        """The subscriber lost what it ran on (a consumer cancelled by RabbitMQ): reopen it."""
        if subscriber not in self._subscribers:
            return
        self._pending.add(subscriber)
        if subscriber not in self._reopening:
            task = asyncio.ensure_future(self._reopen(subscriber))
            self._reopening[subscriber] = task

    def _closed(self, owner: Subscriber, channel: aiormq.Channel) -> None:
        if self._current.get(owner) is channel and self.connected:
            log.warning("a channel of %r was closed: %s", owner, _reason(channel))
            self.lost(owner)

    async def _reconnected(self, *_: object) -> None:
        self._metrics.reconnected()
        log.warning("reconnected to RabbitMQ; reopening %d subscribers", len(self._subscribers))
        for subscriber in list(self._subscribers):
            self.lost(subscriber)

    async def _reopen(self, subscriber: Subscriber) -> None:
        """Until the subscriber has opened again; given up while the connection is away (the
        reconnect calls again)."""
        try:
            while subscriber in self._pending and self.connected:
                self._pending.discard(subscriber)
                try:
                    await subscriber.reopen()
                except Exception as exc:  # whatever it was, the subscriber must not stay shut
                    log.warning(
                        "reopening %r failed: %r; again in %.0f s", subscriber, exc, RETRY_S
                    )
                    self._pending.add(subscriber)
                    await asyncio.sleep(RETRY_S)
        finally:
            if self._reopening.get(subscriber) is asyncio.current_task():
                del self._reopening[subscriber]

    async def close(self) -> None:
        for subscriber in list(self._subscribers):
            self.unsubscribe(subscriber)
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


def _reason(channel: aiormq.Channel) -> str:
    closing = channel.closing
    if closing.done() and not closing.cancelled() and closing.exception() is not None:
        return repr(closing.exception())
    return "closed"
