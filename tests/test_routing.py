"""Table tests for router.routing: RabbitMQ's binding-key matching and which amqp trigger (with
its filter) a message from a user's exchange came through."""

from __future__ import annotations

from typing import Any

import pytest

from router.registry import Snapshot
from router.routing import binding_matches, bound_trigger, matching_trigger, topic_matches
from router.specs import AmqpTrigger, FunctionSpec


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("order.#", "order.eu.created", True),
        ("order.#", "order", True),
        ("order.*", "order.eu.created", False),
        ("order.*.created", "order.eu.created", True),
        ("#", "", True),
        ("#.created", "order.eu.created", True),
        ("*.eu.#", "order.us.created", False),
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
    ],
)
def test_topic_matches(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern.split("."), key.split(".")) is expected


def trigger(exchange_type: str, routing_key: str, **fields: Any) -> AmqpTrigger:
    return AmqpTrigger.model_validate(
        {
            "type": "amqp",
            "function": fields.pop("function", "fn"),
            "exchange": fields.pop("exchange", "orders"),
            "exchange_type": exchange_type,
            "routing_key": routing_key,
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("exchange_type", "binding", "key", "expected"),
    [
        ("topic", "order.*", "order.created", True),
        ("topic", "order.*", "invoice.created", False),
        ("direct", "order.created", "order.created", True),
        ("direct", "order.*", "order.created", False),  # no wildcards in a direct binding
        ("fanout", "anything", "order.created", True),  # fanout ignores the key
        ("headers", "anything", "", True),  # matched on headers by RabbitMQ, not here
    ],
)
def test_binding_matches(exchange_type: str, binding: str, key: str, expected: bool) -> None:
    assert binding_matches(trigger(exchange_type, binding), key) is expected


def snapshot(**triggers: AmqpTrigger) -> Snapshot:
    return Snapshot(functions={"fn": FunctionSpec(handler="h:h")}, triggers=triggers)


def event(exchange: str, routing_key: str, body: Any) -> dict[str, Any]:
    return {"exchange": exchange, "routing_key": routing_key, "body": body}


def test_the_first_trigger_in_name_order_whose_binding_and_filter_accept_wins() -> None:
    eu = {"body": {"region": ["eu"]}}
    found = snapshot(
        b_any=trigger("topic", "order.#"),
        a_eu=trigger("topic", "order.#", filter=eu),
        c_other=trigger("topic", "order.#", exchange="other"),
    )
    assert matching_trigger(found, "fn", event("orders", "order.new", {"region": "eu"})) == "a_eu"
    assert matching_trigger(found, "fn", event("orders", "order.new", {"region": "us"})) == "b_any"
    assert matching_trigger(found, "fn", event("other", "order.new", {})) == "c_other"
    assert matching_trigger(found, "fn", event("orders", "invoice.new", {})) is None
    assert matching_trigger(found, "other-fn", event("orders", "order.new", {})) is None


def test_every_filter_refusing_means_no_trigger() -> None:
    found = snapshot(only=trigger("topic", "#", filter={"body": {"region": ["eu"]}}))
    assert matching_trigger(found, "fn", event("orders", "x", {"region": "us"})) is None


def test_the_bound_trigger_ignores_filters() -> None:
    found = snapshot(
        eu=trigger("topic", "order.*", filter={"body": {"region": ["eu"]}}),
        invoices=trigger("direct", "invoice", exchange="billing"),
    )
    assert bound_trigger(found, "fn", "orders", "order.new") == "eu"
    assert bound_trigger(found, "fn", "billing", "invoice") == "invoices"
    assert bound_trigger(found, "fn", "billing", "order.new") is None


def test_a_trigger_naming_a_version_or_alias_routes_for_its_function() -> None:
    found = snapshot(pinned=trigger("topic", "#", function="fn:live"))
    assert matching_trigger(found, "fn", event("orders", "k", {})) == "pinned"
