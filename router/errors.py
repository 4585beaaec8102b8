"""Exceptions a handler raises to steer its retries. Importable from `router` and cheap to
import, since execution environments load it in every process."""

from __future__ import annotations


class PermanentError(Exception):
    """This event will never succeed: dead-letter it now, without further attempts."""


class Retry(Exception):
    """Try this event again after `after` seconds (still counting as an attempt)."""

    def __init__(self, message: str = "retry requested", *, after: float) -> None:
        super().__init__(message)
        self.after = max(0.0, float(after))


def steering(exc: BaseException) -> dict[str, float | bool]:
    """What an exception asks of the retry policy, as ErrorInfo fields."""
    if isinstance(exc, PermanentError):
        return {"permanent": True}
    if isinstance(exc, Retry):
        return {"retry_after_s": exc.after}
    return {}
