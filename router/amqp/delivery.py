"""What a consumer hands to the dispatcher, and what it gets back to apply: the transport stays
on this side. A `Delivery` carries no delivery tag (only its consumer can settle it); a
`Settlement` says how it is to be settled, and the consumer is the one place that does it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message from a function's queue."""

    body: bytes
    headers: Mapping[str, Any]
    exchange: str
    routing_key: str
    redelivered: bool
    message_id: str | None
    correlation_id: str | None
    content_type: str | None
    timestamp: datetime | None


@dataclass(frozen=True, slots=True)
class Copy:
    """A message to publish in the delivery's place, confirmed before the delivery is acked:
    at any failure in between, the delivery is still in the queue, so nothing is lost."""

    function: str  # the routing key: the function whose queue it returns to
    body: bytes
    headers: Mapping[str, Any]
    message_id: str


@dataclass(frozen=True, slots=True)
class Ack:
    """Done with: acknowledge it."""


@dataclass(frozen=True, slots=True)
class Requeue:
    """Not run here (draining, deleted function, no slot) or not settled: back to the queue."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Another attempt later: the copy waits in the delay tier of `delay_ms`, then acked."""

    copy: Copy
    delay_ms: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """To the function's dead-letter queue (the copy carries its errors), then acked.

    `dropped` counts it as an event dropped unrun too; `then` runs once the copy is confirmed
    (the invocation's record says `dead_lettered` only when it is)."""

    copy: Copy
    reason: str
    dropped: bool = False
    then: Callable[[], Awaitable[None]] | None = None


ACK = Ack()
REQUEUE = Requeue()
Settlement = Ack | Requeue | Retry | DeadLetter
