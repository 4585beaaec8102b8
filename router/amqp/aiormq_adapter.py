"""Every use of aiormq's internals, in one place; tests/test_aiormq_adapter.py holds each to the
installed aiormq (and pyproject.toml pins the major version for them).

Why internals at all: the pipelined publisher (router.amqp.publisher) writes a turn's publishes
in one frame set straight onto the connection's write queue, so it must number them and register
their confirm futures exactly as `Channel.basic_publish` would, for aiormq to match RabbitMQ's
acks, nacks and returns to them. And the supervisor opens plain aiormq channels on the robust
connection's current transport, below aio-pika's robust channels, so that what is restored after
a reconnect is decided by us (router.amqp.connection), not half by aio-pika.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import aiormq
from aio_pika.abc import AbstractRobustConnection
from aiormq.abc import ChannelFrame

Registration = tuple[str, "asyncio.Future[object]"]  # (message id, confirm future)


async def open_channel(connection: AbstractRobustConnection, *, confirms: bool) -> aiormq.Channel:
    """A plain aiormq channel on the robust connection's current transport; unroutable
    publishes on it fail their confirm future (`on_return_raises`)."""
    transport = connection.transport
    if transport is None or transport.connection.is_closed:
        raise ConnectionError("RabbitMQ is not connected")
    channel = await transport.connection.channel(publisher_confirms=confirms)
    assert isinstance(channel, aiormq.Channel)  # what aiormq opens
    return channel


def write(channel: aiormq.Channel, payload: bytes) -> bool:
    """Queue ready-made frames for the connection's writer; False when its queue is full."""
    try:
        channel.write_queue.put_nowait(ChannelFrame(payload=payload, should_close=False))
    except asyncio.QueueFull:
        return False
    return True


def register_confirms(channel: aiormq.Channel, publishes: Iterable[Registration]) -> None:
    """Number the publishes just written, in order, and register their confirm futures as
    `basic_publish` does: RabbitMQ numbers a channel's publishes in the order it reads them."""
    tag = channel.delivery_tag
    confirmations, returns = channel.confirmations, channel.message_id_delivery_tag
    for message_id, future in publishes:
        tag += 1
        confirmations[tag] = future
        returns[message_id] = tag
        future.add_done_callback(_forgetter(returns, message_id, tag))
    channel.delivery_tag = tag


def _forgetter(
    returns: dict[str, int], message_id: str, tag: int
) -> Callable[[asyncio.Future[object]], None]:
    def forget(_: asyncio.Future[object]) -> None:
        if returns.get(message_id) == tag:
            del returns[message_id]

    return forget
