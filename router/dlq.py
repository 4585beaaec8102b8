"""A function's dead-letter queue: list (a page at a time), inspect, replay and purge.

AMQP cannot browse a queue, so reading takes messages without acking them on a channel of its
own and then returns (nacks, requeue) every one not settled. Every request reads the whole
queue (up to MAX_SCAN), even to show one page: a quorum queue puts returned messages at its
back, so a partial read would rotate the queue and move every later page. A replay publishes a
fresh copy (confirmed) before it acks the dead letter, so a failure at any point loses nothing.

Each dead letter is read on its own, and nothing in one can break the others. It is one of:
- `sealed`: written by the router (attempts ran out, too old, too large), its envelope sealed;
  its id is the invocation id, and a replay runs it again under that id;
- `raw`: a message RabbitMQ dead-lettered itself (its consumer died `x-delivery-limit` times
  running it): replayed as the AMQP event it was, from its `x-death` record;
- `malformed`: anything else (envelope headers without a valid seal, nothing to make an event
  from, unreadable): listed with what is wrong, purgeable, never replayed.
A dead letter that is not sealed has an id made from its content (`raw-...`): its headers are
anyone's to write, so nothing in them names it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aio_pika.abc import AbstractIncomingMessage

from router import events
from router.amqp import Broker
from router.envelope import Envelope, Unsealed

MAX_SCAN = 10_000  # dead letters read at most per request
PREVIEW_BYTES = 1024  # bodies longer than this are listed as a preview and their size
PAGE_BYTES = 1024 * 1024  # a listing page stops once its messages take about this much JSON
Kind = Literal["sealed", "raw", "malformed"]
# Headers RabbitMQ adds when it dead-letters a message or returns it to a quorum queue: not
# part of the event it was.
DEAD_LETTERING = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


class UnknownDeadLetter(LookupError):
    """The dead letter a request names is not (or no longer) in the queue."""


@dataclass
class Letter:
    """One dead letter, read once."""

    id: str
    kind: Kind
    message: AbstractIncomingMessage
    envelope: Envelope | None = None
    death: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # what is wrong with a malformed one

    def summary(self) -> dict[str, Any]:
        """As listed: the event when its body is small, else a preview and the size."""
        body = self.message.body
        if len(body) <= PREVIEW_BYTES:
            return {**self._fields(), "event": self._event(), "truncated": False}
        preview = body[:PREVIEW_BYTES].decode("utf-8", "replace")
        return {**self._fields(), "event": None, "truncated": True, "preview": preview}

    def view(self) -> dict[str, Any]:
        """Shown by id: the whole event."""
        return {**self._fields(), "event": self._event(), "truncated": False}

    def _fields(self) -> dict[str, Any]:
        envelope, headers = self.envelope, self.message.headers or {}
        return {
            "id": self.id,
            "kind": self.kind,
            "event_id": envelope.event_id if envelope else self.message.message_id,
            "trigger": envelope.trigger if envelope else None,
            "attempts": len(envelope.errors) if envelope else _count(self.death),
            "errors": list(envelope.errors) if envelope else [],
            "function_version": envelope.function_version if envelope else None,
            "accepted_at": envelope.accepted_at if envelope else None,
            "reason": self._reason(headers),
            "malformed": self.problem,
            "size": len(self.message.body),
        }

    def _reason(self, headers: dict[str, Any]) -> Any:
        if self.envelope is not None:
            last = self.envelope.errors[-1] if self.envelope.errors else {}
            return last.get("status") or "failed"
        if self.kind == "raw":
            return events.plain(self.death.get("reason") or "failed")
        return events.plain(headers.get("x-router-error") or "malformed")

    def _event(self) -> Any:
        body = self.message.body
        try:
            if self.kind == "sealed" and self.envelope is not None:
                return self.envelope.event(body)
            if self.kind == "raw":
                return events.amqp_event(self._amqp(), attempt=1)
        except Exception:  # shown as it is, rather than not at all
            pass
        return events.decode_body(body, self.message.content_type)

    def replay_copy(self) -> tuple[bytes, Envelope]:
        """Body and envelope of the event to run again: attempts start again at one."""
        if self.kind == "sealed" and self.envelope is not None:
            envelope = self.envelope
            body = self.message.body
            if envelope.source is not None:  # dead-lettered before it was made an event
                body = orjson.dumps(envelope.event(body))
            return body, envelope.replayed()
        raw = self._amqp()
        invocation_id = events.new_id()
        event_id = events.amqp_event_id(raw) or invocation_id
        fresh = Envelope(invocation_id, event_id, None, time.time())
        return orjson.dumps(events.amqp_event(raw, attempt=1)), fresh

    def _amqp(self) -> events.AmqpMessage:
        """The message as it was before RabbitMQ dead-lettered it, from its x-death record."""
        message, headers = self.message, self.message.headers or {}
        keys = self.death.get("routing-keys") or [message.routing_key or ""]
        return events.AmqpMessage(
            body=message.body,
            headers={k: v for k, v in headers.items() if not k.startswith(DEAD_LETTERING)},
            routing_key=events.plain(keys[0]),
            exchange=events.plain(self.death.get("exchange", "")),
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            timestamp=message.timestamp,
            redelivered=True,
        )


@dataclass(frozen=True)
class Page:
    messages: list[dict[str, Any]]
    next: str | None  # the id to list `after` for the next page; None at the end
    count: int | None  # every dead letter, when the whole queue was read


@dataclass(frozen=True)
class Replayed:
    replayed: int
    skipped: list[dict[str, str]]  # {"id", "reason"} of each dead letter not replayed


class DeadLetters:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def page(self, function: str, limit: int, after: str | None) -> Page:
        """Up to `limit` dead letters after the one with id `after` (from the start if None),
        fewer when their JSON reaches PAGE_BYTES; raises UnknownDeadLetter for `after`."""
        messages: list[dict[str, Any]] = []
        budget, following, more = PAGE_BYTES, after is None, False

        async def take(letter: Letter) -> bool:
            nonlocal budget, following, more
            if not following:
                following = letter.id == after
                return True
            if len(messages) >= limit or budget <= 0:
                more = True
                return False
            summary = letter.summary()
            budget -= len(orjson.dumps(summary))
            messages.append(summary)
            return True

        scanned, ended = await self._scan(function, take)
        if not following:
            raise UnknownDeadLetter(after)
        next_id = messages[-1]["id"] if messages and (more or not ended) else None
        return Page(messages, next_id, scanned if ended else None)

    async def get(self, function: str, wanted: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        async def take(letter: Letter) -> bool:
            if letter.id == wanted:
                found.append(letter.view())
            return not found

        await self._scan(function, take)
        if not found:
            raise UnknownDeadLetter(wanted)
        return found[0]

    async def count(self, function: str) -> int:
        return (await self._broker.queue_state(function, dead_letters=True)).ready

    async def replay(self, function: str, wanted: str | None) -> Replayed:
        """Send the dead letter with id `wanted` (every one if None) back to the function's
        queue, as new events; malformed ones stay, each skipped with its reason."""
        replayed, skipped = 0, []

        async def take(letter: Letter) -> bool:
            nonlocal replayed
            if wanted is not None and letter.id != wanted:
                return True
            if letter.kind == "malformed":
                skipped.append({"id": letter.id, "reason": letter.problem or "malformed"})
                return True
            try:
                body, envelope = letter.replay_copy()
                headers = self._broker.seal.headers(envelope, function, body)
            except Exception as exc:  # this one cannot be made an event again; the rest can
                skipped.append({"id": letter.id, "reason": f"cannot be replayed: {exc!r}"})
                return True
            await self._broker.publish(function, body, headers, envelope.event_id)
            await letter.message.ack()
            replayed += 1
            return True

        await self._scan(function, take)
        return Replayed(replayed, skipped)

    async def purge(self, function: str, wanted: str | None) -> int:
        """Delete the dead letter with id `wanted`, or every one (malformed included)."""
        if wanted is None:
            async with self._broker.topology.dead_letter_queue(function) as queue:
                purged = await queue.purge()
                return int(purged.message_count or 0)
        done = 0

        async def take(letter: Letter) -> bool:
            nonlocal done
            if letter.id == wanted:
                await letter.message.ack()
                done += 1
            return True

        await self._scan(function, take)
        return done

    async def _scan(
        self, function: str, take: Callable[[Letter], Awaitable[bool]]
    ) -> tuple[int, bool]:
        """Read every dead letter in order, handing each to `take` until it says stop, then
        return those not settled, in order; how many were read and whether that was all."""
        await self._broker.seal.refresh()  # a key another replica made since, if any
        scanned, taking = 0, True
        unsettled: AbstractIncomingMessage | None = None
        async with self._broker.topology.dead_letter_queue(function) as queue:
            while scanned < MAX_SCAN:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                scanned += 1
                if taking:
                    taking = await take(self.read(function, message))
                if not message.processed:
                    unsettled = message
            if unsettled is not None:
                # An explicit requeue, which RabbitMQ 4.3+ does not count as a delivery attempt.
                await unsettled.nack(multiple=True, requeue=True)
        return scanned, scanned < MAX_SCAN

    def read(self, function: str, message: AbstractIncomingMessage) -> Letter:
        """Classify one dead letter; whatever is in it, the answer is a Letter."""
        try:
            return self._classified(function, message)
        except Exception as exc:  # one unreadable dead letter must not hide the others
            return Letter(content_id(message), "malformed", message, problem=f"unreadable: {exc!r}")

    def _classified(self, function: str, message: AbstractIncomingMessage) -> Letter:
        headers = message.headers or {}
        try:
            envelope = self._broker.seal.open(headers, function, message.body)
            problem = None if envelope else "no envelope of the router"
        except Unsealed as exc:
            envelope, problem = None, f"{exc}: not written by this router (or with a lost key)"
        if envelope is not None:
            return Letter(envelope.invocation_id, "sealed", message, envelope)
        death = _first_death(headers)
        if death:
            return Letter(content_id(message), "raw", message, death=death)
        problem = f"{problem}, and no x-death record to make an AMQP event from"
        return Letter(content_id(message), "malformed", message, problem=problem)


def content_id(message: AbstractIncomingMessage) -> str:
    """An id for a dead letter the router did not seal, from what cannot change between reads
    (quorum queues add a delivery count header each time a message is returned)."""
    digest = hashlib.blake2b(digest_size=10)
    digest.update((message.message_id or "").encode("utf-8", "replace") + b"\0")
    digest.update(message.body)
    return "raw-" + digest.hexdigest()


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    """RabbitMQ's latest dead-lettering record, if it is one that can be used."""
    deaths = headers.get("x-death")
    if not (isinstance(deaths, list) and deaths and isinstance(deaths[0], dict)):
        return {}
    death: dict[str, Any] = deaths[0]
    keys = death.get("routing-keys")
    if not isinstance(death.get("exchange"), str | bytes) or not (
        isinstance(keys, list) and keys and isinstance(keys[0], str | bytes)
    ):
        return {}
    return death


def _count(death: dict[str, Any]) -> int | None:
    count = death.get("count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None
