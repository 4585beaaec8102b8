"""Echo: returns what it was given, the smallest useful function for trying triggers."""

from __future__ import annotations

from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function": context.function_name,
        "version": context.function_version,
    }
