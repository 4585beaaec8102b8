"""Settling the deliveries of one consumer channel with as few frames as possible.

Every basic.ack is a frame and a socket write. Deliveries finished in the same turn of the event
loop are acknowledged together with one `basic.ack(multiple=True)` for the highest tag below
which everything is finished. `multiple` covers every outstanding tag up to the one named, so it
is sent only once no earlier delivery is still running; a finished delivery stuck behind a slow
one is acknowledged on its own after a short wait, so it does not hold a prefetch slot.

Delivery tags of a channel are consecutive from 1, and all frames go out in the order they were
decided, so a requeue (nack) always reaches RabbitMQ before any multiple ack that covers it.
RabbitMQ rejects an ack naming a tag that is already settled, which is why the named tag is
always one still waiting for its ack.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import aiormq.abc
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aiormq.exceptions import ChannelInvalidStateError

log = logging.getLogger("router.acks")
STRAGGLER_S = 0.005  # how long a finished delivery waits behind an unfinished earlier one

Op = tuple[Literal["ack", "nack"], int, bool]


class Acks:
    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self.channel = channel
        self._next = 1  # lowest tag not known to be finished
        self._finished: dict[int, bool] = {}  # tag -> still needs its ack
        self._ops: list[Op] = []
        self._sender: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        self._stragglers: asyncio.TimerHandle | None = None

    def ack(self, tag: int) -> None:
        self._finished[tag] = True
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def nack(self, tag: int) -> None:
        """Back to the queue, at once."""
        self._send(("nack", tag, False))
        self._finished[tag] = False

    async def close(self) -> None:
        """Acknowledge everything finished and wait until the frames are written."""
        self._flush()
        self._ack_stragglers()
        if self._sender is not None:
            await self._sender

    def _flush(self) -> None:
        self._flush_scheduled = False
        top = None
        while self._next in self._finished:
            if self._finished.pop(self._next):
                top = self._next
            self._next += 1
        if top is not None:
            self._send(("ack", top, True))
        if any(self._finished.values()) and self._stragglers is None:
            loop = asyncio.get_running_loop()
            self._stragglers = loop.call_later(STRAGGLER_S, self._ack_stragglers)

    def _ack_stragglers(self) -> None:
        if self._stragglers is not None:
            self._stragglers.cancel()
            self._stragglers = None
        self._flush()
        for tag, waiting in sorted(self._finished.items()):
            if waiting:
                self._send(("ack", tag, False))
                self._finished[tag] = False

    def _send(self, op: Op) -> None:
        self._ops.append(op)
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        """The only writer of this channel's settlements: one task, frames in decision order."""
        try:
            while self._ops:
                ops, self._ops = self._ops, []
                for kind, tag, multiple in ops:
                    if kind == "ack":
                        await self.channel.basic_ack(tag, multiple=multiple, wait=False)
                    else:
                        await self.channel.basic_nack(tag, requeue=True, wait=False)
        except (*CONNECTION_EXCEPTIONS, ChannelInvalidStateError) as exc:
            # The channel is gone: RabbitMQ redelivers whatever it had not heard about.
            log.warning("settling deliveries failed (%s); they will be redelivered", exc)
            self._ops.clear()
        finally:
            self._sender = None
