"""Order processor: consumes order events from RabbitMQ (an `amqp` trigger) and totals them.

Register it with an amqp trigger on your `orders` exchange (see the README's tour). A bad order
raises, so the event is retried and finally dead-lettered with the error, never dropped.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class InvalidOrder(ValueError):
    pass


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    order = event.get("body")
    if not isinstance(order, dict):
        raise InvalidOrder("the order must be a JSON object")
    lines = order.get("lines") or []
    if not lines:
        raise InvalidOrder(f"order {order.get('id')!r} has no lines")
    total = sum(
        (Decimal(str(line["price"])) * int(line.get("qty", 1)) for line in lines), Decimal(0)
    )
    context.logger.info("order %s: %d lines, total %s", order.get("id"), len(lines), total)
    return {
        "order_id": order.get("id"),
        "lines": len(lines),
        "total": str(total),
        "region": order.get("region"),
    }
