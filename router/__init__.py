"""trigger-router: a self-hosted, AWS Lambda-style function platform.

Handlers keep AWS Lambda's signature, `handler(event, context)`; `@router.function(...)`
declares one, with its spec and triggers, in code.
"""

from router.declare import function

__all__ = ["function"]
__version__ = "0.1.0"
