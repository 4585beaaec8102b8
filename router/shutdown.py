"""A shutdown that cannot hang: one deadline for all of it, and steps that are waited for
only until then.

A timeout that works by cancelling (`asyncio.timeout`, `wait_for`) waits for the cancelled
code to finish, and a library that swallows the cancellation (aio-pika's robust connection
does, while it reconnects) makes that wait endless. `bounded` stops *waiting* at the deadline
instead: the step is cancelled and left behind, and the shutdown goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

log = logging.getLogger("router")
# After the grace period for running invocations: closing connections, flushing what was
# written behind, stopping environments. The grace plus this is the longest a shutdown takes.
MARGIN_S = 4.0


class Deadline:
    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds

    def left(self, keep_s: float = 0.0) -> float:
        """Seconds until the deadline, less `keep_s` kept for what comes after; never negative."""
        return max(0.0, self._at - keep_s - time.monotonic())


async def bounded(what: str, step: Awaitable[object], seconds: float) -> bool:
    """Await `step` for at most `seconds`. False, logged, if it failed or was left behind."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=max(seconds, 0.001))
    if not done:
        task.cancel()
        log.warning("shutdown: %s did not finish within %.1f s; going on without it", what, seconds)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.warning("shutdown: %s failed: %r", what, task.exception())
        return False
    return True
