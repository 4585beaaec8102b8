"""What travels with an event through the function's queue, as AMQP headers.

Events the router publishes itself (async webhooks and invokes, retries) carry the finished
event as the body and this envelope in headers; a message a user publishes to their own
exchange has no envelope and becomes an AMQP event when it is consumed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

PREFIX = "x-router-"


@dataclass(frozen=True)
class Envelope:
    invocation_id: str
    event_id: str
    trigger: str | None
    accepted_at: float
    attempt: int = 1
    errors: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    version: str | None = None  # the function version to run (`$LATEST` or a number)

    def headers(self) -> dict[str, Any]:
        headers: dict[str, Any] = {
            PREFIX + "invocation-id": self.invocation_id,
            PREFIX + "event-id": self.event_id,
            PREFIX + "accepted-at": repr(self.accepted_at),
            PREFIX + "attempt": self.attempt,
        }
        if self.trigger:
            headers[PREFIX + "trigger"] = self.trigger
        if self.errors:
            headers[PREFIX + "errors"] = orjson.dumps(list(self.errors)).decode()
        if self.version:
            headers[PREFIX + "version"] = self.version
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any]) -> Envelope | None:
        """The envelope, or None for a message the router did not publish."""
        if PREFIX + "invocation-id" not in headers:
            return None
        raw_errors = headers.get(PREFIX + "errors")
        errors = tuple(orjson.loads(_text(raw_errors))) if raw_errors else ()
        trigger = headers.get(PREFIX + "trigger")
        version = headers.get(PREFIX + "version")
        return cls(
            invocation_id=_text(headers[PREFIX + "invocation-id"]),
            event_id=_text(headers[PREFIX + "event-id"]),
            trigger=_text(trigger) if trigger else None,
            accepted_at=float(_text(headers[PREFIX + "accepted-at"])),
            attempt=int(headers.get(PREFIX + "attempt", 1)),
            errors=errors,
            version=_text(version) if version else None,
        )

    def next_attempt(self, error: dict[str, Any]) -> Envelope:
        return replace(self, attempt=self.attempt + 1, errors=(*self.errors, error))

    def failed(self, error: dict[str, Any]) -> Envelope:
        """The last attempt's error recorded, for the dead-letter queue."""
        return replace(self, errors=(*self.errors, error))

    def replayed(self) -> Envelope:
        """A fresh life for an event replayed from the dead-letter queue."""
        return replace(self, attempt=1, errors=(), accepted_at=time.time())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
