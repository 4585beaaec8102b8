"""From a delivered message to a settled one: build the event, filter, invoke, settle.

`_settle` is the only place a message is acked or nacked, and it runs only once the outcome is
known and, for a retry or a dead letter, once RabbitMQ has confirmed the copy that replaces it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiormq.abc import DeliveredMessage
from redis.exceptions import RedisError

from router import events, filters, retry
from router.acks import Acks
from router.broker import Broker, BrokerError
from router.envelope import Envelope
from router.executors import ErrorInfo, Outcome
from router.invocations import InvocationStore, Record
from router.invoker import Invoker
from router.metrics import Metrics
from router.pool import TurnedAway
from router.registry import Registry, Snapshot, Target
from router.specs import LATEST, AmqpTrigger, FunctionSpec

log = logging.getLogger("router.dispatcher")
Settlement = Literal["ack", "nack"]


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
    ) -> None:
        self._registry = registry
        self._invoker = invoker
        self._store = store
        self._broker = broker
        self._metrics = metrics
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
        try:
            delivery = self._delivery(function, message, snapshot)
        except (ValueError, KeyError, orjson.JSONDecodeError) as exc:
            return await self._dead_letter_malformed(function, message, exc)
        if delivery is None:
            return "ack"
        target = snapshot.target_of(function, delivery.envelope.version)
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

    def _delivery(
        self, function: str, message: DeliveredMessage, snapshot: Snapshot
    ) -> Delivery | None:
        """The event to run, or None when every binding trigger's filter turns it away."""
        envelope = Envelope.from_headers(message.header.properties.headers or {})
        if envelope is not None:
            return Delivery(function, orjson.loads(message.body), envelope)
        amqp = _amqp_message(message)
        event = events.amqp_event(amqp, attempt=1)
        trigger = _matching_trigger(snapshot, function, event)
        if trigger is None:
            for name in snapshot.amqp_triggers_of(function):
                self._metrics.child(self._metrics.filtered, function, name).inc()
            return None
        invocation_id = events.new_id()
        event_id = events.amqp_event_id(amqp) or invocation_id
        accepted = amqp.timestamp.timestamp() if amqp.timestamp else time.time()
        # The trigger may name a version or an alias: the version drawn now is the one its
        # retries run too.
        target = snapshot.resolve(snapshot.triggers[trigger].function)
        version = target.version if target is not None else None
        envelope = Envelope(invocation_id, event_id, trigger, accepted, version=version)
        return Delivery(function, event, envelope)

    async def _run(self, delivery: Delivery, target: Target) -> Outcome:
        spec = target.spec
        env = delivery.envelope
        started = time.time()
        self._metrics.child(self._metrics.event_age, delivery.function).observe(
            max(0, started - env.accepted_at)
        )
        record: Record = {
            "id": env.invocation_id,
            "function": delivery.function,
            "status": "running",
            "trigger": env.trigger,
            "event_id": env.event_id,
            "function_version": target.version,
            "attempt": env.attempt,
            "created_at": env.accepted_at,
            "started_at": started,
        }
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
                version=target.version,
            )
        except TurnedAway:
            record["status"] = "queued"  # it never ran here; it goes back to the queue
            self._store.save(record)
            raise
        record.update(_finished(outcome))
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
                await self._dead_letter(delivery, body, env.failed(failure), spec, outcome)
        except BrokerError as exc:
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
            envelope.headers(),
            envelope.event_id,
            delay_ms=retry.tier(delay_s),
        )
        self._metrics.child(self._metrics.retries, delivery.function).inc()

    async def _dead_letter(
        self,
        delivery: Delivery,
        body: bytes,
        envelope: Envelope,
        spec: FunctionSpec,
        outcome: Outcome,
    ) -> None:
        headers = {**envelope.headers(), "x-router-function-version": envelope.version or LATEST}
        await self._broker.publish(
            delivery.function, body, headers, envelope.event_id, dead_letter=True
        )
        self._metrics.child(self._metrics.dead_letters, delivery.function, outcome.status).inc()
        try:
            record = await self._store.get(envelope.invocation_id)
        except RedisError:
            record = None
        if record is not None:
            self._store.save({**record.model_dump(), "status": "dead_lettered"})

    async def _dead_letter_malformed(
        self, function: str, message: DeliveredMessage, exc: Exception
    ) -> Settlement:
        log.warning("dead-lettering a malformed message on %s: %s", function, exc)
        headers = {
            **(message.header.properties.headers or {}),
            "x-router-error": f"malformed message: {exc}",
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
        self._metrics.child(self._metrics.dead_letters, function, "malformed").inc()
        self._metrics.child(self._metrics.async_dropped, function, "malformed").inc()
        return "ack"


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


def _version_gone(delivery: Delivery) -> Outcome:
    version = delivery.envelope.version
    message = f"version {version} of {delivery.function!r} was deleted before the event ran"
    return Outcome("failed", 0.0, error=ErrorInfo("VersionNotFound", message, permanent=True))


def _finished(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "finished_at": time.time(),
        "duration_ms": round(outcome.duration_ms, 3),
        "billed_duration_ms": outcome.billed_ms,
        "result": outcome.result,
        "error": error_record(outcome.error),
    }


def error_record(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "traceback": "\n".join(error.trace)}


def _attempt_error(attempt: int, outcome: Outcome) -> dict[str, Any]:
    error = outcome.error or ErrorInfo("Unknown", "no error recorded")
    return {
        "attempt": attempt,
        "status": outcome.status,
        "type": error.type,
        "message": error.message[:1000],
        "at": time.time(),
    }
