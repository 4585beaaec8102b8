"""Invoking a function from an HTTP request, the one way the webhook route, the admin API's
Invoke and the Lambda API's Invoke all do: run it now, or queue the event for its consumers.

What each route answers stays its own (a function URL hides a handler's error, the Lambda API
speaks Lambda's shapes): this gives them the typed outcome to answer from.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from router.enqueue import Enqueuer
from router.executors import Outcome
from router.invoker import Invoker
from router.registry import Target
from router.slots import Throttled


@dataclass(frozen=True, slots=True)
class Throttling:
    """The function is at its concurrency limit: nothing ran, the caller may retry."""

    function: str


class InvocationService:
    def __init__(self, invoker: Invoker, enqueuer: Enqueuer) -> None:
        self._invoker = invoker
        self._enqueuer = enqueuer

    async def run(
        self,
        target: Target,
        event: Any,
        request_id: str,
        *,
        event_id: str | None = None,
        client_context: str | None = None,
    ) -> Outcome | Throttling:
        """Run the event now on the target's version; a caller over the concurrency limit is
        turned away at once rather than kept waiting for a slot."""
        try:
            return await self._invoker.invoke(
                target.function,
                target.spec,
                event,
                request_id,
                event_id=event_id,
                wait=False,
                client_context=client_context,
                version=target.version,
                qualifier=target.qualifier,
            )
        except Throttled:
            return Throttling(target.function)

    def enqueue(
        self,
        target: Target,
        event: Any,
        *,
        event_id: str | None = None,
        trigger: str | None = None,
        invocation_id: str | None = None,
    ) -> Coroutine[Any, Any, str]:
        """Queue the event for the target's version; the coroutine answers the invocation id
        once RabbitMQ confirmed, or raises BrokerError. Not a coroutine itself: on the async
        webhook's path it would be one more frame per request for nothing."""
        return self._enqueuer.enqueue(
            target.function, target.version, event, event_id, trigger, invocation_id
        )
