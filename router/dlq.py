"""A function's dead-letter queue: list, inspect, replay and purge.

AMQP cannot browse a queue, so reading takes messages without acking them on a channel of its
own; closing that channel returns every message not explicitly settled. A replay publishes a
fresh copy (confirmed) before it acks the dead letter, so a failure at any point loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from router import events
from router.broker import Broker
from router.envelope import Envelope
from router.names import Names

MAX_SCAN = 10_000
Select = Callable[[dict[str, Any]], bool]


class DeadLetters:
    def __init__(self, broker: Broker, names: Names) -> None:
        self._broker = broker
        self._names = names

    async def list(self, function: str, limit: int) -> list[dict[str, Any]]:
        async with self._broker.connection().channel() as channel:
            queue = await channel.get_queue(self._names.dead_letter_queue(function), ensure=True)
            found = []
            for _ in range(limit):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                found.append(describe(message))
            return found  # closing the channel puts them all back

    async def count(self, function: str) -> int:
        return (await self._broker.queue_state(function, dead_letters=True)).ready

    async def replay(self, function: str, select: Select) -> int:
        """Send the selected dead letters back to the function's queue, as new events."""

        async def settle(message: AbstractIncomingMessage) -> None:
            body, headers, message_id = replay_copy(message)
            await self._broker.publish(function, body, headers, message_id)
            await message.ack()

        return await self._each(function, select, settle)

    async def purge(self, function: str, select: Select) -> int:
        async def drop(message: AbstractIncomingMessage) -> None:
            await message.ack()

        return await self._each(function, select, drop)

    async def _each(
        self,
        function: str,
        select: Select,
        act: Callable[[AbstractIncomingMessage], Any],
    ) -> int:
        done = 0
        async with self._broker.connection().channel() as channel:
            queue: AbstractQueue = await channel.get_queue(
                self._names.dead_letter_queue(function), ensure=True
            )
            for _ in range(MAX_SCAN):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                if select(describe(message)):
                    await act(message)
                    done += 1
        return done


def describe(message: AbstractIncomingMessage) -> dict[str, Any]:
    headers = message.headers or {}
    envelope = Envelope.from_headers(headers)
    death = _first_death(headers)
    return {
        "id": envelope.invocation_id if envelope else message.message_id,
        "event_id": envelope.event_id if envelope else message.message_id,
        "trigger": envelope.trigger if envelope else None,
        "attempts": len(envelope.errors) if envelope else death.get("count"),
        "errors": list(envelope.errors) if envelope else [],
        "function_version": headers.get("x-router-function-version"),
        "accepted_at": envelope.accepted_at if envelope else None,
        "reason": events.plain(headers.get("x-router-error") or death.get("reason") or "failed"),
        "event": events.decode_body(message.body, message.content_type),
    }


def replay_copy(message: AbstractIncomingMessage) -> tuple[bytes, dict[str, Any], str]:
    """Body and envelope for a replayed event: attempts start again at one.

    A dead letter without an envelope (a raw message RabbitMQ dead-lettered itself, after its
    consumer died too often) is turned into the AMQP event it would have been, using the
    exchange and routing key recorded in its `x-death` header.
    """
    headers = message.headers or {}
    envelope = Envelope.from_headers(headers)
    if envelope is not None:
        return message.body, envelope.replayed().headers(), envelope.event_id
    death = _first_death(headers)
    keys = death.get("routing-keys") or [message.routing_key or ""]
    raw = events.AmqpMessage(
        body=message.body,
        headers={k: v for k, v in headers.items() if k != "x-death"},
        routing_key=events.plain(keys[0]),
        exchange=events.plain(death.get("exchange", "")),
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        timestamp=message.timestamp,
        redelivered=True,
    )
    invocation_id = events.new_id()
    event_id = events.amqp_event_id(raw) or invocation_id
    fresh = Envelope(invocation_id, event_id, None, time.time())
    return orjson.dumps(events.amqp_event(raw, attempt=1)), fresh.headers(), event_id


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}
