"""Confirmed publishing, pipelined: every publish of one loop turn leaves in one socket write.

aiormq's `basic_publish` takes the channel lock, arms a timeout, encodes through pamqp, queues
one frame set per message for its writer task and waits for that write: about half the CPU of
accepting an async webhook. Here a publish encodes its frames at once (the method frame is
cached per exchange and routing key; headers of plain values are encoded directly), joins the
turn's batch for its channel, and waits for its own confirm. The batch is handed to the
connection's writer as one frame set, and its delivery tags and confirm futures are registered
on the aiormq channel exactly as `basic_publish` registers them (through router.amqp.aiormq_adapter,
the one module that touches aiormq's internals). So aiormq still matches acks, nacks (multiple
or not), returns (`mandatory`) and closes to the right publish.

Nothing else may publish on a channel given to a Publisher: it numbers the deliveries itself.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Mapping
from typing import Any

from aiormq import Channel
from pamqp.encode import field_table

from router.amqp import aiormq_adapter

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_END = 1, 2, 3, b"\xce"
BASIC_CLASS, BASIC_PUBLISH = 60, 40
# content-type, headers, delivery-mode and message-id, in the property-flags order.
PROPERTY_FLAGS = 0x8000 | 0x2000 | 0x1000 | 0x0080
CONTENT_TYPE = b"application/json"
PERSISTENT = 2
MAX_LONG_LONG = 2**63
SWEEP_S = 0.1
METHODS_KEPT = 4096

_FRAME = struct.Struct(">BHI")
_HEADER = struct.Struct(">HHQH")
_LONG = struct.Struct(">I")
_LONG_LONG = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")

Batch = list[tuple[bytes, str, "asyncio.Future[object]"]]


class Publisher:
    """Pipelined confirmed publishes on aiormq channels (opened with publisher confirms)."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._batches: dict[Channel, Batch] = {}
        self._methods: dict[tuple[int, str, str], bytes] = {}
        self._flushing = False
        # Sent publishes in order, with their deadlines: a sweep every SWEEP_S fails the ones
        # past theirs and lets go of the confirmed ones (holding every future for the whole
        # timeout kept thousands alive and cost long gen-2 garbage collections).
        self._unconfirmed: deque[tuple[float, asyncio.Future[object]]] = deque()
        self._sweep: asyncio.TimerHandle | None = None

    def publish(
        self,
        channel: Channel,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: Mapping[str, Any],
        message_id: str,
    ) -> asyncio.Future[object]:
        """Queue a persistent, mandatory JSON message; the future resolves on RabbitMQ's ack.

        Raises ConnectionError on a closed channel. The future fails with aiormq's PublishError
        (returned: unroutable), DeliveryError (nacked), the channel's close reason, or
        TimeoutError after the timeout.
        """
        if channel.is_closed:
            raise ConnectionError(f"{channel!r} is closed")
        number = channel.number
        frames = b"".join(
            (
                self._method(number, exchange, routing_key),
                content_header(number, len(body), headers, message_id),
                *body_frames(number, body, channel.max_content_size),
            )
        )
        future = channel.create_future()  # aiormq rejects it if the channel closes
        self._batches.setdefault(channel, []).append((frames, message_id, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)
        return future

    def _method(self, channel: int, exchange: str, routing_key: str) -> bytes:
        key = (channel, exchange, routing_key)
        method = self._methods.get(key)
        if method is None:
            if len(self._methods) >= METHODS_KEPT:  # channel numbers change on reconnects
                self._methods.clear()
            method = self._methods[key] = publish_method(channel, exchange, routing_key)
        return method

    def _flush(self) -> None:
        self._flushing = False
        batches, self._batches = self._batches, {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        unconfirmed = self._unconfirmed
        for channel, batch in batches.items():
            if self._send(channel, batch):
                unconfirmed.extend((deadline, future) for _, _, future in batch)
            else:
                self._batches.setdefault(channel, [])[:0] = batch
        if self._batches and not self._flushing:
            # The connection's write queue was full: its writer empties it within a turn.
            self._flushing = True
            loop.call_soon(self._flush)
        if unconfirmed and self._sweep is None:
            self._sweep = loop.call_later(min(SWEEP_S, self._timeout_s), self._expire)

    def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        now, unconfirmed = loop.time(), self._unconfirmed
        while unconfirmed:
            deadline, future = unconfirmed[0]
            if not future.done():
                if deadline > now:
                    break
                future.set_exception(TimeoutError("no publisher confirm in time"))
            unconfirmed.popleft()
        self._sweep = loop.call_later(SWEEP_S, self._expire) if unconfirmed else None

    @staticmethod
    def _send(channel: Channel, batch: Batch) -> bool:
        """Hand the batch to the writer and register its confirms; False if it must wait."""
        if channel.is_closed:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(ConnectionError(f"{channel!r} is closed"))
            return True
        if not aiormq_adapter.write(channel, b"".join(frames for frames, _, _ in batch)):
            return False
        aiormq_adapter.register_confirms(channel, ((m, f) for _, m, f in batch))
        return True


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return b"".join((_FRAME.pack(kind, channel, len(payload)), payload, FRAME_END))


def _short(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"{text[:40]!r}... is longer than an AMQP short string (255 bytes)")
    return bytes((len(raw),)) + raw


def publish_method(channel: int, exchange: str, routing_key: str) -> bytes:
    """The basic.publish method frame, mandatory (an unroutable message comes back)."""
    arguments = struct.pack(">HHH", BASIC_CLASS, BASIC_PUBLISH, 0)
    return _frame(
        FRAME_METHOD, channel, arguments + _short(exchange) + _short(routing_key) + b"\x01"
    )


def content_header(channel: int, size: int, headers: Mapping[str, Any], message_id: str) -> bytes:
    payload = b"".join(
        (
            _HEADER.pack(BASIC_CLASS, 0, size, PROPERTY_FLAGS),
            bytes((len(CONTENT_TYPE),)),
            CONTENT_TYPE,
            table(headers),
            bytes((PERSISTENT,)),
            _short(message_id),
        )
    )
    return _frame(FRAME_HEADER, channel, payload)


def body_frames(channel: int, body: bytes, limit: int) -> list[bytes]:
    return [_frame(FRAME_BODY, channel, body[at : at + limit]) for at in range(0, len(body), limit)]


def table(headers: Mapping[str, Any]) -> bytes:
    """An AMQP field table; None values are left out. Strings, integers, booleans and floats
    are encoded here; a table holding anything else (a replayed message's x-death list, say)
    goes to pamqp's general encoder."""
    parts: list[bytes] = []
    for key, value in headers.items():
        if value is None:
            continue
        kind = type(value)
        if kind is str:
            raw = value.encode()
            parts += (_short(key), b"S", _LONG.pack(len(raw)), raw)
        elif kind is int and -MAX_LONG_LONG <= value < MAX_LONG_LONG:
            parts += (_short(key), b"l", _LONG_LONG.pack(value))
        elif kind is bool:
            parts += (_short(key), b"t", b"\x01" if value else b"\x00")
        elif kind is float:
            parts += (_short(key), b"d", _DOUBLE.pack(value))
        else:
            return field_table({str(k): v for k, v in headers.items() if v is not None})
    encoded = b"".join(parts)
    return _LONG.pack(len(encoded)) + encoded
