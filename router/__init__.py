"""trigger-router: a self-hosted, AWS Lambda-style function platform.

Handlers keep AWS Lambda's Python signature, `handler(event, context)`; `@router.function(...)`
declares one, with its spec and triggers, in code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from router.errors import PermanentError, Retry

if TYPE_CHECKING:
    from router.declare import function

__all__ = ["PermanentError", "Retry", "function"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use, so an execution environment's process starts without pydantic.
    if name == "function":
        from router.declare import function

        return function
    raise AttributeError(f"module 'router' has no attribute {name!r}")
