"""Execution environments: where a handler runs, and what comes back.

The invoker hands a `Call` to the local executor (threads, the event loop) or to a pool of
worker processes and gets an `Outcome` back; nothing else about how a handler runs leaks out.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from router.errors import steering

if TYPE_CHECKING:
    from router.specs import FunctionSpec

Status = Literal["succeeded", "failed", "timed_out"]


# Call and Outcome are built once or twice per invocation: slotted, and not frozen (a frozen
# dataclass sets each field through object.__setattr__, several times slower). Never mutated.
@dataclass(slots=True)
class Call:
    function: str
    spec: FunctionSpec
    event: Any
    request_id: str


@dataclass(frozen=True)
class ErrorInfo:
    """An error as Lambda reports one: errorType, errorMessage, stackTrace."""

    type: str
    message: str
    trace: list[str] = field(default_factory=list)
    permanent: bool = False  # the handler raised router.PermanentError: no more attempts
    retry_after_s: float | None = None  # the handler raised router.Retry(after=...)

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
        return cls(
            type(exc).__name__,
            str(exc),
            [line.rstrip("\n") for line in frames],
            **steering(exc),  # type: ignore[arg-type]
        )

    def as_dict(self) -> dict[str, Any]:
        return {"errorType": self.type, "errorMessage": self.message, "stackTrace": self.trace}


@dataclass(slots=True)
class Outcome:
    status: Status
    duration_ms: float
    result: Any = None
    error: ErrorInfo | None = None
    duplicate: bool = False  # answered from an idempotent function's stored result
    logs: str = ""  # what the handler printed and logged

    @property
    def billed_ms(self) -> int:
        """Billed duration, rounded up to the next millisecond as Lambda bills."""
        return max(1, -int(-self.duration_ms // 1))
