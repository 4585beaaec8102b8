"""Which amqp trigger a message from a user's exchange came through: RabbitMQ's binding-key
matching (direct, topic `*`/`#`, fanout and headers taken as matching) and the triggers'
filters. Pure: the snapshot is data, nothing here does I/O."""

from __future__ import annotations

import functools
from typing import Any

from router import filters
from router.registry import Snapshot
from router.specs import AmqpTrigger


def matching_trigger(snapshot: Snapshot, function: str, event: dict[str, Any]) -> str | None:
    """The first amqp trigger of the function whose binding and filter accept the event."""
    for name, trigger in snapshot.amqp_triggers_of(function).items():
        if trigger.exchange != event["exchange"] or not binding_matches(
            trigger, event["routing_key"]
        ):
            continue
        if trigger.filter is None or filters.matches(trigger.filter, event):
            return name
    return None


def bound_trigger(snapshot: Snapshot, function: str, exchange: str, routing_key: str) -> str | None:
    """The first amqp trigger of the function whose binding routes the message (no filter)."""
    for name, trigger in snapshot.amqp_triggers_of(function).items():
        if trigger.exchange == exchange and binding_matches(trigger, routing_key):
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
