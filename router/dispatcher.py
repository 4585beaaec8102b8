"""From a delivered message to a settled one: build the event, filter, invoke, settle.

`_settle` is the only place a message is acked or nacked, and it runs only once the outcome is
known and, for a retry or a dead letter, once RabbitMQ has confirmed the copy that replaces it.

Two kinds of message reach a function's queue. Through the router's own work exchange come the
events it published itself (async webhooks and invokes, retries from the delay tiers, replays):
their envelope must carry a valid seal, or they are dead-lettered unrun. Through a trigger's
binding comes whatever anyone publishes to the user's exchange: always a plain AMQP event,
filtered, with an invocation id of its own, whatever `x-router-*` headers it carries.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson
from aiormq.abc import DeliveredMessage
from redis.exceptions import RedisError

from router import events, filters, retry
from router.acks import Acks
from router.broker import Broker, BrokerError
from router.envelope import Envelope, Unsealed, carries_envelope, to_source
from router.executors import ErrorInfo, Outcome
from router.invocations import InvocationStore, Record, error_record, finished
from router.invoker import Invoker
from router.metrics import Metrics
from router.registry import Registry, Snapshot, Target
from router.seal import SealError
from router.slots import TurnedAway
from router.specs import LATEST, AmqpTrigger, FunctionSpec

log = logging.getLogger("router.dispatcher")
Settlement = Literal["ack", "nack"]
DEFAULT_MAX_EVENT_BYTES = 6 * 1024 * 1024


@dataclass(frozen=True)
class Delivery:
    function: str
    event: Any
    envelope: Envelope


class Dispatcher:
    def __init__(
        self,
        registry: Registry,
        invoker: Invoker,
        store: InvocationStore,
        broker: Broker,
        metrics: Metrics,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._registry = registry
        self._invoker = invoker
        self._store = store
        self._broker = broker
        self._metrics = metrics
        self._max_event_bytes = max_event_bytes
        self._work_exchange = broker.names.work_exchange
        self._running = 0
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> int:
        return self._running

    async def drained(self, timeout_s: float) -> bool:
        """Stop starting messages; wait for those running to settle. False on timeout."""
        self._draining = True
        self._invoker.turn_away()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def handle(self, function: str, message: DeliveredMessage, acks: Acks) -> None:
        tag = message.delivery_tag or 0
        if self._draining:
            acks.nack(tag)  # prefetched, not started: back to the queue for others
            return
        self._running += 1
        self._idle.clear()
        try:
            if await self._settlement(function, message) == "ack":
                acks.ack(tag)
            else:
                acks.nack(tag)
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    async def _settlement(self, function: str, message: DeliveredMessage) -> Settlement:
        try:
            return await self._handle(function, message)
        except Exception:
            # A bug of ours must not strand the message unacked until the channel closes.
            log.exception("unexpected error handling a message of %s; requeueing it", function)
            return "nack"

    async def _handle(self, function: str, message: DeliveredMessage) -> Settlement:
        snapshot = self._registry.snapshot
        spec = snapshot.functions.get(function)
        if spec is None:
            # Deleted while this message was in flight: keep it for when the function returns.
            return "nack"
        delivery: Delivery | None
        if _exchange(message) == self._work_exchange:
            try:
                delivery = await self._own(function, message)
            except Unsealed as exc:
                self._metrics.child(self._metrics.envelope_rejections, function, "unverified").inc()
                return await self._dead_letter_raw(function, message, "unverified", str(exc))
            except (ValueError, KeyError, orjson.JSONDecodeError) as exc:
                return await self._dead_letter_raw(function, message, "malformed", str(exc))
        elif len(message.body) > self._max_event_bytes:
            return await self._dead_letter_oversize(function, message, snapshot)
        else:
            delivery = self._from_binding(function, message, snapshot)
        if delivery is None:
            return "ack"
        target = snapshot.target_of(function, delivery.envelope.function_version)
        if target is None:  # its version was deleted while it waited: nothing else may run it
            return await self._settle(delivery, spec, _version_gone(delivery))
        spec = target.spec
        age_s = time.time() - delivery.envelope.accepted_at
        if age_s >= spec.retry.max_event_age_s:
            # Too old to run at all (Lambda's maximum event age): straight to the DLQ.
            expired = Outcome(
                "failed",
                0.0,
                error=ErrorInfo(
                    "EventExpired", f"event is {age_s:.0f} s old, past max_event_age_s"
                ),
            )
            self._metrics.child(self._metrics.async_dropped, function, "expired").inc()
            return await self._settle(delivery, spec, expired)
        try:
            outcome = await self._run(delivery, target)
        except TurnedAway:
            return "nack"  # prefetched, never started: back to the queue for other replicas
        return await self._settle(delivery, spec, outcome)

    async def _own(self, function: str, message: DeliveredMessage) -> Delivery:
        """An event the router published: its envelope must be sealed by this namespace.

        Unsealed (after reading the keys again, in case another replica made a new one) means
        it was not written by the router: raised for the caller to dead-letter it unrun.
        """
        headers = message.header.properties.headers or {}
        seal = self._broker.seal
        try:
            envelope = seal.open(headers, function, message.body)
        except Unsealed:
            if not await seal.refresh():
                raise
            envelope = seal.open(headers, function, message.body)
        if envelope is None:
            raise Unsealed("a message on the router's own exchange without an envelope")
        return Delivery(function, envelope.event(message.body), envelope)

    def _from_binding(
        self, function: str, message: DeliveredMessage, snapshot: Snapshot
    ) -> Delivery | None:
        """A message from a user's exchange, as an AMQP event, or None when every binding
        trigger's filter turns it away. Its headers are data, never an envelope."""
        amqp = _amqp_message(message)
        if amqp.headers and carries_envelope(amqp.headers):
            self._metrics.child(self._metrics.envelope_rejections, function, "forged").inc()
        event = events.amqp_event(amqp, attempt=1)
        trigger = _matching_trigger(snapshot, function, event)
        if trigger is None:
            for name in snapshot.amqp_triggers_of(function):
                self._metrics.child(self._metrics.filtered, function, name).inc()
            return None
        # The trigger may name a version or an alias: the version drawn now is the one its
        # retries run too.
        target = snapshot.resolve(snapshot.triggers[trigger].function)
        fresh = _fresh_envelope(amqp, trigger)
        version = None if target is None else target.version
        return Delivery(function, event, replace(fresh, function_version=version))

    async def _run(self, delivery: Delivery, target: Target) -> Outcome:
        """Run the event on the version it names; its record says `queued` until it has a
        slot, then `running` with the time it really started."""
        spec = target.spec
        env = delivery.envelope
        record: Record = {
            "id": env.invocation_id,
            "function": delivery.function,
            "status": "queued",
            "trigger": env.trigger,
            "event_id": env.event_id,
            "function_version": target.version,
            "attempt": env.attempt,
            "created_at": env.accepted_at,
        }
        self._store.queued(record)

        def started() -> None:
            now = time.time()
            self._metrics.child(self._metrics.event_age, delivery.function).observe(
                max(0, now - env.accepted_at)
            )
            record.update(status="running", started_at=now)
            self._store.save(record)

        if isinstance(delivery.event, dict) and "attempt" in delivery.event:
            delivery.event["attempt"] = env.attempt
        try:
            outcome = await self._invoker.invoke(
                delivery.function,
                spec,
                delivery.event,
                env.invocation_id,
                event_id=env.event_id,
                on_start=started,
                version=target.version,
            )
        except TurnedAway:
            record["status"] = "queued"  # it never ran here; it goes back to the queue
            self._store.save(record)
            raise
        record.update(finished(outcome))
        self._store.save(record)
        return outcome

    async def _settle(self, delivery: Delivery, spec: FunctionSpec, outcome: Outcome) -> Settlement:
        """Ack, or nack to requeue; a retry or a dead letter is acked only once RabbitMQ has
        confirmed the copy that replaces it."""
        env = delivery.envelope
        error = outcome.error
        decision = retry.decide(
            outcome.status,
            env.attempt,
            time.time() - env.accepted_at,
            spec.retry,
            permanent=error is not None and error.permanent,
        )
        if decision == "ack":
            return "ack"
        failure = _attempt_error(env.attempt, outcome)
        body = orjson.dumps(delivery.event)
        try:
            if decision == "retry":
                await self._retry(delivery, body, env.next_attempt(failure), spec, outcome)
            else:
                failed = env.failed(failure, env.function_version or LATEST)
                await self._dead_letter(delivery, body, failed, outcome)
        except (BrokerError, SealError) as exc:
            log.warning(
                "could not re-publish %s (%s); returning it to the queue", env.invocation_id, exc
            )
            return "nack"
        return "ack"

    async def _retry(
        self,
        delivery: Delivery,
        body: bytes,
        envelope: Envelope,
        spec: FunctionSpec,
        outcome: Outcome,
    ) -> None:
        """Park the event in the delay tier its backoff (or the handler's Retry) asks for."""
        asked = outcome.error.retry_after_s if outcome.error else None
        delay_s = retry.backoff(envelope.attempt - 1, spec.retry) if asked is None else asked
        await self._broker.publish(
            delivery.function,
            body,
            self._broker.seal.headers(envelope, delivery.function, body),
            envelope.event_id,
            delay_ms=retry.tier(delay_s),
        )
        self._metrics.child(self._metrics.retries, delivery.function).inc()

    async def _dead_letter(
        self, delivery: Delivery, body: bytes, envelope: Envelope, outcome: Outcome
    ) -> None:
        headers = self._broker.seal.headers(envelope, delivery.function, body)
        await self._broker.publish(
            delivery.function, body, headers, envelope.event_id, dead_letter=True
        )
        expired = outcome.error is not None and outcome.error.type == "EventExpired"
        reason = "expired" if expired else outcome.status
        self._metrics.child(self._metrics.dead_letters, delivery.function, reason).inc()
        try:
            record = await self._store.get(envelope.invocation_id)
        except RedisError:
            record = None
        if record is not None:  # its error is why it went: the last attempt's, or its age
            error = error_record(outcome.error)
            self._store.save({**record.model_dump(), "status": "dead_lettered", "error": error})

    async def _dead_letter_raw(
        self, function: str, message: DeliveredMessage, reason: str, detail: str
    ) -> Settlement:
        """Dead-letter a message from the router's own exchange that cannot be trusted or read,
        as it came: the dead-letter queue lists it as malformed, for someone to look at."""
        log.warning("dead-lettering a message on %s unrun (%s): %s", function, reason, detail)
        headers = {
            **(message.header.properties.headers or {}),
            "x-router-error": f"{reason}: {detail}",
        }
        try:
            await self._broker.publish(
                function,
                message.body,
                headers,
                message.header.properties.message_id or events.new_id(),
                dead_letter=True,
            )
        except BrokerError:
            return "nack"
        self._metrics.child(self._metrics.dead_letters, function, reason).inc()
        self._metrics.child(self._metrics.async_dropped, function, reason).inc()
        return "ack"

    async def _dead_letter_oversize(
        self, function: str, message: DeliveredMessage, snapshot: Snapshot
    ) -> Settlement:
        """Dead-letter a message over ROUTER_MAX_EVENT_BYTES unrun and undecoded: its body as it
        came, its properties in the sealed envelope, so a replay can still make its event."""
        amqp = _amqp_message(message)
        error = {
            "attempt": 0,
            "status": "oversize",
            "type": "EventTooLarge",
            "message": f"the message is {len(amqp.body)} bytes, over ROUTER_MAX_EVENT_BYTES"
            f" ({self._max_event_bytes})",
            "at": time.time(),
        }
        fresh = _fresh_envelope(amqp, _bound_trigger(snapshot, function, amqp))
        envelope = replace(fresh, errors=(error,), source=to_source(amqp))
        log.warning(
            "dead-lettering %s on %s: %s", envelope.invocation_id, function, error["message"]
        )
        try:
            headers = self._broker.seal.headers(envelope, function, amqp.body)
            await self._broker.publish(
                function, amqp.body, headers, envelope.event_id, dead_letter=True
            )
        except (BrokerError, SealError):
            return "nack"
        self._metrics.child(self._metrics.dead_letters, function, "oversize").inc()
        self._metrics.child(self._metrics.async_dropped, function, "oversize").inc()
        return "ack"


def _version_gone(delivery: Delivery) -> Outcome:
    version = delivery.envelope.function_version
    message = f"version {version} of {delivery.function!r} was deleted before the event ran"
    return Outcome("failed", 0.0, error=ErrorInfo("VersionNotFound", message, permanent=True))


def _fresh_envelope(amqp: events.AmqpMessage, trigger: str | None) -> Envelope:
    """A new invocation for a message from a user's exchange. Its age counts from its AMQP
    timestamp, never from the future (that would exempt it from max_event_age_s)."""
    invocation_id = events.new_id()
    event_id = events.amqp_event_id(amqp) or invocation_id
    now = time.time()
    accepted = min(amqp.timestamp.timestamp(), now) if amqp.timestamp else now
    return Envelope(invocation_id, event_id, trigger, accepted)


def _bound_trigger(snapshot: Snapshot, function: str, amqp: events.AmqpMessage) -> str | None:
    """The first amqp trigger of the function whose binding routes the message (no filter)."""
    for name, trigger in snapshot.amqp_triggers_of(function).items():
        if trigger.exchange == amqp.exchange and binding_matches(trigger, amqp.routing_key):
            return name
    return None


def _exchange(message: DeliveredMessage) -> str:
    return getattr(message.delivery, "exchange", "") or ""


def _matching_trigger(snapshot: Snapshot, function: str, event: dict[str, Any]) -> str | None:
    """The first amqp trigger of the function whose binding and filter accept the event."""
    for name, trigger in snapshot.amqp_triggers_of(function).items():
        if trigger.exchange != event["exchange"] or not binding_matches(
            trigger, event["routing_key"]
        ):
            continue
        if trigger.filter is None or filters.matches(trigger.filter, event):
            return name
    return None


def binding_matches(trigger: AmqpTrigger, routing_key: str) -> bool:
    """Whether RabbitMQ would route `routing_key` through this trigger's binding."""
    if trigger.exchange_type == "topic":
        return _topic_binding_matches(trigger.routing_key, routing_key)
    if trigger.exchange_type == "direct":
        return trigger.routing_key == routing_key
    return True


@functools.lru_cache(maxsize=4096)
def _topic_binding_matches(binding: str, routing_key: str) -> bool:
    # A queue sees few distinct (binding, key) pairs; matching is recursive, remembering is not.
    return topic_matches(binding.split("."), routing_key.split("."))


def topic_matches(pattern: list[str], words: list[str]) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more."""
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(topic_matches(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and topic_matches(rest, words[1:])


def _amqp_message(message: DeliveredMessage) -> events.AmqpMessage:
    properties = message.header.properties
    delivery = message.delivery  # always a Basic.Deliver here: we only consume
    return events.AmqpMessage(
        body=message.body,
        headers=properties.headers or {},
        routing_key=getattr(delivery, "routing_key", "") or "",
        exchange=getattr(delivery, "exchange", "") or "",
        message_id=properties.message_id,
        correlation_id=properties.correlation_id,
        content_type=properties.content_type,
        timestamp=properties.timestamp,
        redelivered=bool(getattr(delivery, "redelivered", False)),
    )


def _attempt_error(attempt: int, outcome: Outcome) -> dict[str, Any]:
    error = outcome.error or ErrorInfo("Unknown", "no error recorded")
    return {
        "attempt": attempt,
        "status": outcome.status,
        "type": error.type,
        "message": error.message[:1000],
        "at": time.time(),
    }
