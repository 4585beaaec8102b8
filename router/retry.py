"""What happens to a message after an attempt: a pure decision, tested as a table."""

from __future__ import annotations

from typing import Literal

from router.specs import RetryPolicy

Settlement = Literal["ack", "retry", "dead_letter"]


def decide(status: str, attempt: int, age_s: float, policy: RetryPolicy) -> Settlement:
    """Ack a success; retry a failure while attempts and event age remain; else dead-letter."""
    if status == "succeeded":
        return "ack"
    if attempt >= policy.max_attempts or age_s >= policy.max_event_age_s:
        return "dead_letter"
    return "retry"
