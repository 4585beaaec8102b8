"""The retry policy as pure functions, tested as tables: what to do after an attempt, how long
to wait, and which delay tier carries the wait."""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from typing import Literal

from router.specs import RetryPolicy

Settlement = Literal["ack", "retry", "dead_letter"]

# Delay tiers in ms: one queue each, TTL'd back to the work exchange. Fixed tiers keep the
# queue count bounded and let a short delay never wait behind a long one.
TIERS_MS = (
    100,
    250,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_800_000,
    3_600_000,
    7_200_000,
    21_600_000,
    43_200_000,
    86_400_000,
)


def decide(
    status: str, attempt: int, age_s: float, policy: RetryPolicy, permanent: bool = False
) -> Settlement:
    """Ack a success; retry a failure while attempts and event age remain; else dead-letter."""
    if status == "succeeded":
        return "ack"
    if permanent or attempt >= policy.max_attempts or age_s >= policy.max_event_age_s:
        return "dead_letter"
    return "retry"


def backoff(attempt: int, policy: RetryPolicy, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with equal jitter: uniform in [d/2, d], d = min(cap, base *
    2^(attempt-1)). The floor keeps a retry from following its failure at once (full jitter
    drew delays of a few ms), the jitter still spreads retries of a burst."""
    ceiling = min(policy.backoff_max_s, policy.backoff_s * 2.0 ** (attempt - 1))
    return float(ceiling / 2 + rand() * ceiling / 2)


def tier(delay_s: float) -> int:
    """The longest tier not above the delay (0: no wait), so a retry never waits too long."""
    index = bisect.bisect_right(TIERS_MS, delay_s * 1000)
    return TIERS_MS[index - 1] if index else 0
