"""From a delivered message to how it is to be settled: build the event, filter, invoke,
decide. `handle` takes a `Delivery` and returns a `Settlement`: ack, requeue, retry (a copy into
a delay tier) or dead-letter (a copy to the dead-letter queue). The consumer applies it
(router.amqp.consumer): nothing here acks, and a copy is confirmed before its delivery is acked.

Two kinds of message reach a function's queue. Through the router's own work exchange come the
events it published itself (async webhooks and invokes, retries from the delay tiers, replays):
their envelope must carry a valid seal, or they are dead-lettered unrun. Through a trigger's
binding comes whatever anyone publishes to the user's exchange: always a plain AMQP event,
filtered, with an invocation id of its own, whatever `x-router-*` headers it carries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson
from redis.exceptions import RedisError

from router import events, retry, routing
from router.amqp import (
    ACK,
    REQUEUE,
    Broker,
    Copy,
    DeadLetter,
    Delivery,
    Retry,
    Settlement,
)
from router.envelope import Envelope, Unsealed, carries_envelope, to_source
from router.executors import ErrorInfo, Outcome
from router.invocations import InvocationStore, Record, error_record, finished
from router.invoker import Invoker
from router.metrics import Metrics
from router.registry import Registry, Snapshot, Target
from router.seal import SealError
from router.slots import TurnedAway
from router.specs import LATEST, FunctionSpec

log = logging.getLogger("router.dispatcher")
DEFAULT_MAX_EVENT_BYTES = 6 * 1024 * 1024


@dataclass(frozen=True)
class Work:
    """A delivery made an event to run: the event and the envelope it runs under."""

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
        """Stop starting messages; wait for those running to finish (their consumers settle
        them). False on timeout."""
        self._draining = True
        self._invoker.turn_away()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def handle(self, function: str, delivery: Delivery) -> Settlement:
        if self._draining:
            return REQUEUE  # prefetched, not started: back to the queue for others
        self._running += 1
        self._idle.clear()
        try:
            return await self._handle(function, delivery)
        except Exception:
            # A bug of ours must not strand the message unacked until the channel closes.
            log.exception("unexpected error handling a message of %s; requeueing it", function)
            return REQUEUE
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    async def _handle(self, function: str, delivery: Delivery) -> Settlement:
        snapshot = self._registry.snapshot
        spec = snapshot.functions.get(function)
        if spec is None:
            # Deleted while this message was in flight: keep it for when the function returns.
            return REQUEUE
        work: Work | None
        if delivery.exchange == self._work_exchange:
            try:
                work = await self._own(function, delivery)
            except Unsealed as exc:
                self._metrics.envelope_rejected(function, "unverified")
                return _dead_letter_raw(function, delivery, "unverified", str(exc))
            except (ValueError, KeyError, orjson.JSONDecodeError) as exc:
                return _dead_letter_raw(function, delivery, "malformed", str(exc))
        elif len(delivery.body) > self._max_event_bytes:
            return self._dead_letter_oversize(function, delivery, snapshot)
        else:
            work = self._from_binding(function, delivery, snapshot)
        if work is None:
            return ACK
        target = snapshot.target_of(function, work.envelope.function_version)
        if target is None:  # its version was deleted while it waited: nothing else may run it
            return self._settlement(work, spec, _version_gone(work))
        spec = target.spec
        age_s = time.time() - work.envelope.accepted_at
        if age_s >= spec.retry.max_event_age_s:
            # Too old to run at all (Lambda's maximum event age): straight to the DLQ.
            expired = Outcome(
                "failed",
                0.0,
                error=ErrorInfo(
                    "EventExpired", f"event is {age_s:.0f} s old, past max_event_age_s"
                ),
            )
            self._metrics.dropped(function, "expired")
            return self._settlement(work, spec, expired)
        try:
            outcome = await self._run(work, target)
        except TurnedAway:
            return REQUEUE  # prefetched, never started: back to the queue for other replicas
        return self._settlement(work, spec, outcome)

    async def _own(self, function: str, delivery: Delivery) -> Work:
        """An event the router published: its envelope must be sealed by this namespace.

        Unsealed (after reading the keys again, in case another replica made a new one) means
        it was not written by the router: raised for the caller to dead-letter it unrun.
        """
        headers, body, seal = delivery.headers, delivery.body, self._broker.seal
        try:
            envelope = seal.open(headers, function, body)
        except Unsealed:
            if not await seal.refresh():
                raise
            envelope = seal.open(headers, function, body)
        if envelope is None:
            raise Unsealed("a message on the router's own exchange without an envelope")
        return Work(function, envelope.event(body), envelope)

    def _from_binding(self, function: str, delivery: Delivery, snapshot: Snapshot) -> Work | None:
        """A message from a user's exchange, as an AMQP event, or None when every binding
        trigger's filter turns it away. Its headers are data, never an envelope."""
        amqp = _amqp_message(delivery)
        if amqp.headers and carries_envelope(amqp.headers):
            self._metrics.envelope_rejected(function, "forged")
        event = events.amqp_event(amqp, attempt=1)
        trigger = routing.matching_trigger(snapshot, function, event)
        if trigger is None:
            for name in snapshot.amqp_triggers_of(function):
                self._metrics.filtered_out(function, name)
            return None
        # The trigger may name a version or an alias: the version drawn now is the one its
        # retries run too.
        target = snapshot.resolve(snapshot.triggers[trigger].function)
        fresh = _fresh_envelope(amqp, trigger)
        version = None if target is None else target.version
        return Work(function, event, replace(fresh, function_version=version))

    async def _run(self, work: Work, target: Target) -> Outcome:
        """Run the event on the version it names; its record says `queued` until it has a
        slot, then `running` with the time it really started."""
        spec = target.spec
        env = work.envelope
        record: Record = {
            "id": env.invocation_id,
            "function": work.function,
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
            self._metrics.event_started(work.function, max(0, now - env.accepted_at))
            record.update(status="running", started_at=now)
            self._store.save(record)

        if isinstance(work.event, dict) and "attempt" in work.event:
            work.event["attempt"] = env.attempt
        try:
            outcome = await self._invoker.invoke(
                work.function,
                spec,
                work.event,
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

    def _settlement(self, work: Work, spec: FunctionSpec, outcome: Outcome) -> Settlement:
        """Ack, or a copy to publish in its place: another attempt, or a dead letter."""
        env = work.envelope
        error = outcome.error
        decision = retry.decide(
            outcome.status,
            env.attempt,
            time.time() - env.accepted_at,
            spec.retry,
            permanent=error is not None and error.permanent,
        )
        if decision == "ack":
            return ACK
        failure = _attempt_error(env.attempt, outcome)
        body = orjson.dumps(work.event)
        try:
            if decision == "retry":
                return self._retry(work, body, env.next_attempt(failure), spec, outcome)
            return self._dead_letter(
                work, body, env.failed(failure, env.function_version or LATEST), outcome
            )
        except SealError as exc:
            log.warning("could not seal %s (%s); returning it to the queue", env.invocation_id, exc)
            return REQUEUE

    def _retry(
        self, work: Work, body: bytes, envelope: Envelope, spec: FunctionSpec, outcome: Outcome
    ) -> Retry:
        """Park the event in the delay tier its backoff (or the handler's Retry) asks for."""
        asked = outcome.error.retry_after_s if outcome.error else None
        delay_s = retry.backoff(envelope.attempt - 1, spec.retry) if asked is None else asked
        return Retry(self._copy(work.function, body, envelope), retry.tier(delay_s))

    def _dead_letter(
        self, work: Work, body: bytes, envelope: Envelope, outcome: Outcome
    ) -> DeadLetter:
        """To the dead-letter queue with its errors; its record is marked once it is there."""
        expired = outcome.error is not None and outcome.error.type == "EventExpired"
        reason = "expired" if expired else outcome.status

        async def record() -> None:
            """Its record says why it went: the last attempt's error, or its age."""
            try:
                found = await self._store.get(envelope.invocation_id)
            except RedisError:
                found = None
            if found is not None:
                error = error_record(outcome.error)
                self._store.save({**found.model_dump(), "status": "dead_lettered", "error": error})

        return DeadLetter(self._copy(work.function, body, envelope), reason, then=record)

    def _copy(self, function: str, body: bytes, envelope: Envelope) -> Copy:
        headers = self._broker.seal.headers(envelope, function, body)
        return Copy(function, body, headers, envelope.event_id)

    def _dead_letter_oversize(
        self, function: str, delivery: Delivery, snapshot: Snapshot
    ) -> Settlement:
        """Dead-letter a message over ROUTER_MAX_EVENT_BYTES unrun and undecoded: its body as it
        came, its properties in the sealed envelope, so a replay can still make its event."""
        amqp = _amqp_message(delivery)
        error = {
            "attempt": 0,
            "status": "oversize",
            "type": "EventTooLarge",
            "message": f"the message is {len(amqp.body)} bytes, over ROUTER_MAX_EVENT_BYTES"
            f" ({self._max_event_bytes})",
            "at": time.time(),
        }
        trigger = routing.bound_trigger(snapshot, function, amqp.exchange, amqp.routing_key)
        fresh = _fresh_envelope(amqp, trigger)
        envelope = replace(fresh, errors=(error,), source=to_source(amqp))
        log.warning(
            "dead-lettering %s on %s: %s", envelope.invocation_id, function, error["message"]
        )
        try:
            copy = self._copy(function, amqp.body, envelope)
        except SealError:
            return REQUEUE
        return DeadLetter(copy, "oversize", dropped=True)


def _dead_letter_raw(function: str, delivery: Delivery, reason: str, detail: str) -> DeadLetter:
    """Dead-letter a message from the router's own exchange that cannot be trusted or read,
    as it came: the dead-letter queue lists it as malformed, for someone to look at."""
    log.warning("dead-lettering a message on %s unrun (%s): %s", function, reason, detail)
    headers: Mapping[str, Any] = {**delivery.headers, "x-router-error": f"{reason}: {detail}"}
    message_id = delivery.message_id or events.new_id()
    return DeadLetter(Copy(function, delivery.body, headers, message_id), reason, dropped=True)


def _version_gone(work: Work) -> Outcome:
    version = work.envelope.function_version
    message = f"version {version} of {work.function!r} was deleted before the event ran"
    return Outcome("failed", 0.0, error=ErrorInfo("VersionNotFound", message, permanent=True))


def _fresh_envelope(amqp: events.AmqpMessage, trigger: str | None) -> Envelope:
    """A new invocation for a message from a user's exchange. Its age counts from its AMQP
    timestamp, never from the future (that would exempt it from max_event_age_s)."""
    invocation_id = events.new_id()
    event_id = events.amqp_event_id(amqp) or invocation_id
    now = time.time()
    accepted = min(amqp.timestamp.timestamp(), now) if amqp.timestamp else now
    return Envelope(invocation_id, event_id, trigger, accepted)


def _amqp_message(delivery: Delivery) -> events.AmqpMessage:
    return events.AmqpMessage(
        body=delivery.body,
        headers=delivery.headers,
        routing_key=delivery.routing_key,
        exchange=delivery.exchange,
        message_id=delivery.message_id,
        correlation_id=delivery.correlation_id,
        content_type=delivery.content_type,
        timestamp=delivery.timestamp,
        redelivered=delivery.redelivered,
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
