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
