"""Accepting an async event: durably queued (publisher confirm) before anyone hears "accepted"."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from router import events
from router.broker import Broker, BrokerError
from router.envelope import Envelope
from router.invocations import Invocation, InvocationStore
from router.metrics import Metrics

log = logging.getLogger("router.ingress")


class Ingress:
    def __init__(self, broker: Broker, store: InvocationStore, metrics: Metrics) -> None:
        self._broker = broker
        self._store = store
        self._metrics = metrics

    async def enqueue(
        self,
        function: str,
        version: int,
        event: Any,
        event_id: str | None,
        trigger: str | None,
        invocation_id: str | None = None,
    ) -> str:
        """Queue the event for the function; returns the invocation id once RabbitMQ confirmed.

        The `queued` record and the publish run side by side; the record is written only if the
        consumer has not already moved it on, and removed again if the publish fails.
        """
        invocation_id = invocation_id or events.new_id()
        envelope = Envelope(invocation_id, event_id or invocation_id, trigger, time.time())
        record = Invocation(
            id=invocation_id,
            function=function,
            status="queued",
            trigger=trigger,
            event_id=envelope.event_id,
            function_version=version,
            created_at=envelope.accepted_at,
        )
        published, recorded = await asyncio.gather(
            self._broker.publish(
                function, orjson.dumps(event), envelope.headers(), envelope.event_id
            ),
            self._store.queued(record),
            return_exceptions=True,
        )
        if isinstance(published, BaseException):
            await self._forget(invocation_id)
            if isinstance(published, BrokerError):
                raise published
            raise BrokerError(f"publish failed: {published!r}") from published
        if isinstance(recorded, BaseException):
            log.warning("event %s queued but not recorded: %s", invocation_id, recorded)
        self._metrics.async_received.labels(function).inc()
        return invocation_id

    async def _forget(self, invocation_id: str) -> None:
        try:
            await self._store.forget(invocation_id)
        except Exception as exc:  # the record is a convenience; the answer is already an error
            log.warning("could not remove record %s: %s", invocation_id, exc)
