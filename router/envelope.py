"""What travels with an event through the function's queue, as AMQP headers, and its seal.

Events the router publishes itself (async webhooks and invokes, retries, dead letters, replays)
carry the finished event as the body and this envelope in headers, sealed: a MAC, keyed with a
secret of the namespace, over the function, every envelope header and the body. Anyone who can
publish to a user's exchange can write `x-router-*` headers too; without the seal they are only
data. A message a user publishes to their own exchange has no envelope and becomes an AMQP event
when it is consumed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

from router import events

PREFIX = "x-router-"
SEAL = PREFIX + "seal"
# Every header the seal covers, in the order it covers them.
SEALED = tuple(
    PREFIX + name
    for name in (
        "invocation-id",
        "event-id",
        "trigger",
        "accepted-at",
        "attempt",
        "errors",
        "function-version",
        "source",
    )
)
MAC_BYTES = 16
Keyed = hashlib.blake2b  # with its key: see keyed()


class Unsealed(ValueError):
    """Envelope headers without a valid seal: forged, or sealed with a key this replica does
    not know (it has none yet, or another replica made a new one)."""


@dataclass(frozen=True)
class Envelope:
    invocation_id: str
    event_id: str
    trigger: str | None
    accepted_at: float
    attempt: int = 1
    errors: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    # The function version that runs it (`$LATEST` or a published number), drawn when the
    # event was accepted and kept through its retries; on dead letters, the one that failed.
    function_version: str | None = None
    # A raw AMQP message the router dead-lettered without making an event of it (too large to
    # decode): its properties and headers; the body is the message's own.
    source: dict[str, Any] | None = None

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
        if self.function_version is not None:
            headers[PREFIX + "function-version"] = self.function_version
        if self.source is not None:
            headers[PREFIX + "source"] = orjson.dumps(self.source).decode()
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any]) -> Envelope | None:
        """The envelope, or None for a message without one. Trust it only once its seal is
        checked (`Seal.open`): anything here could have been written by anyone."""
        invocation_id, event_id, trigger, accepted_at, attempt, errors, version, source = map(
            headers.get, SEALED
        )
        if invocation_id is None:
            return None
        if event_id is None or accepted_at is None:
            raise KeyError("an envelope without its event id or time of acceptance")
        return cls(
            invocation_id=_text(invocation_id),
            event_id=_text(event_id),
            trigger=_text(trigger) if trigger else None,
            accepted_at=float(_text(accepted_at)),
            attempt=1 if attempt is None else int(attempt),
            errors=tuple(orjson.loads(_text(errors))) if errors else (),
            function_version=None if version is None else _text(version),
            source=orjson.loads(_text(source)) if source else None,
        )

    def event(self, body: bytes) -> Any:
        """The event this envelope's body carries."""
        if self.source is None:
            return orjson.loads(body)
        return events.amqp_event(from_source(self.source, body), attempt=self.attempt)

    def next_attempt(self, error: dict[str, Any]) -> Envelope:
        return replace(self, attempt=self.attempt + 1, errors=(*self.errors, error))

    def failed(self, error: dict[str, Any], function_version: str) -> Envelope:
        """The last attempt's error recorded, for the dead-letter queue."""
        return replace(self, errors=(*self.errors, error), function_version=function_version)

    def replayed(self) -> Envelope:
        """A fresh life for an event replayed from the dead-letter queue."""
        return replace(
            self, attempt=1, errors=(), accepted_at=time.time(), function_version=None, source=None
        )


def keyed(key: bytes) -> Keyed:
    """A MAC of `key`, ready to be copied for each message: keyed BLAKE2b (a MAC by
    construction, about twice as fast as HMAC-SHA256 here; a copy skips hashing the key)."""
    return hashlib.blake2b(key=key, digest_size=MAC_BYTES)


def mac(key: Keyed, function: str, headers: Mapping[str, Any], body: bytes) -> str:
    """The MAC of an envelope for `function`: over the sealed headers as text, then the body."""
    get = headers.get
    texts = [v if (v := get(name)) is None or type(v) is str else _text(v) for name in SEALED]
    digest = key.copy()
    digest.update(orjson.dumps([function, *texts]))
    digest.update(body)
    return digest.hexdigest()


def verified(
    keys: tuple[Keyed, ...], function: str, headers: Mapping[str, Any], body: bytes
) -> bool:
    claimed = headers.get(SEAL)
    if claimed is None:
        return False
    given = _text(claimed).encode("utf-8", "replace")
    try:
        for key in keys:
            if hmac.compare_digest(mac(key, function, headers, body).encode(), given):
                return True
    except orjson.JSONEncodeError:  # header values no envelope of ours has
        pass
    return False


def carries_envelope(headers: Mapping[str, Any]) -> bool:
    """Whether a message has headers in the router's own namespace of header names."""
    return any(isinstance(name, str) and name.startswith(PREFIX) for name in headers)


def to_source(message: events.AmqpMessage) -> dict[str, Any]:
    """A raw message's properties and headers, as JSON values, to make its event later."""
    return {
        "headers": events.plain(dict(message.headers)),
        "routing_key": message.routing_key,
        "exchange": message.exchange,
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
        "content_type": message.content_type,
        "timestamp": message.timestamp.isoformat() if message.timestamp else None,
        "redelivered": message.redelivered,
    }


def from_source(source: Mapping[str, Any], body: bytes) -> events.AmqpMessage:
    stamp = source.get("timestamp")
    return events.AmqpMessage(
        body=body,
        headers=source.get("headers") or {},
        routing_key=str(source.get("routing_key") or ""),
        exchange=str(source.get("exchange") or ""),
        message_id=source.get("message_id"),
        correlation_id=source.get("correlation_id"),
        content_type=source.get("content_type"),
        timestamp=datetime.fromisoformat(stamp) if stamp else None,
        redelivered=bool(source.get("redelivered")),
    )


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
