"""Accepting an async event: durably queued (publisher confirm) before anyone hears "accepted"."""

from __future__ import annotations

import time
from typing import Any

import orjson

from router import events
from router.amqp import Broker, BrokerError
from router.envelope import Envelope
from router.invocations import InvocationStore, Record
from router.metrics import Metrics


class Enqueuer:
    def __init__(self, broker: Broker, store: InvocationStore, metrics: Metrics) -> None:
        self._broker = broker
        self._store = store
        self._metrics = metrics

    async def enqueue(
        self,
        function: str,
        version: str,
        event: Any,
        event_id: str | None,
        trigger: str | None,
        invocation_id: str | None = None,
    ) -> str:
        """Queue the event for `version` of the function (`$LATEST` or a published number:
        the one that runs it, whatever is published meanwhile); returns the invocation id
        once RabbitMQ confirmed.

        The `queued` record is written after the confirm, so a refused event leaves nothing to
        undo; it is still in place before the caller hears the id. It is written only if the
        consumer has not already moved it on.
        """
        invocation_id = invocation_id or events.new_id()
        envelope = Envelope(
            invocation_id, event_id or invocation_id, trigger, time.time(), function_version=version
        )
        try:
            body = orjson.dumps(event)
            headers = self._broker.seal.headers(envelope, function, body)
            await self._broker.publish(function, body, headers, envelope.event_id)
        except BrokerError:
            raise
        except Exception as exc:  # anything unforeseen (not JSON, no key yet) is "not queued"
            raise BrokerError(f"publish failed: {exc!r}") from exc
        self._store.queued(_queued(function, version, envelope))
        self._metrics.async_accepted(function)
        return invocation_id


def _queued(function: str, version: str, envelope: Envelope) -> Record:
    return {
        "id": envelope.invocation_id,
        "function": function,
        "status": "queued",
        "trigger": envelope.trigger,
        "event_id": envelope.event_id,
        "function_version": version,
        "created_at": envelope.accepted_at,
    }
