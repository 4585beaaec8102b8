"""Execution environments: where a handler runs, and what comes back.

Every kind of environment (inline on the event loop, a thread, the Python worker process, a
Runtime API process) is an `Executor`: `run(call) -> Outcome`. The invoker picks one from a
table by the function's isolation; nothing else about how a handler runs leaks out.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from router.errors import steering

if TYPE_CHECKING:
    from router.specs import FunctionSpec

Status = Literal["succeeded", "failed", "timed_out"]


class Executor(Protocol):
    async def run(self, call: Call) -> Outcome: ...


# Call and Outcome are built once or twice per invocation: slotted, and not frozen (a frozen
# dataclass sets each field through object.__setattr__, several times slower). Never mutated.
@dataclass(slots=True)
class Call:
    function: str
    spec: FunctionSpec
    event: Any
    request_id: str
    client_context: str | None = None  # base64 JSON, as Lambda's X-Amz-Client-Context
    version: str = "$LATEST"  # the version running: `$LATEST` or a published number
    qualifier: str | None = None  # the alias or version the caller named (the invoked ARN's)


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
    max_memory_mb: float = 0.0  # of the process environment that ran it
    init_ms: float | None = None  # after a cold start: the environment's init duration

    @property
    def billed_ms(self) -> int:
        """Billed duration, rounded up to the next millisecond as Lambda bills."""
        return max(1, -int(-self.duration_ms // 1))
