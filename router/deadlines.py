"""Timeouts for many concurrent invocations with one timer.

`asyncio.timeout` arms and disarms a loop timer per call, which costs about as much as the rest of
running a small async handler. Here each running task only records its deadline; one tick every
10 ms cancels the tasks past theirs (Lambda's own timeout resolution is far coarser).
"""

from __future__ import annotations

import asyncio

TICK_S = 0.01


class Deadlines:
    def __init__(self) -> None:
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._tick: asyncio.TimerHandle | None = None

    def start(self, timeout_s: float) -> asyncio.Task[object]:
        """Watch the current task; cancel it `timeout_s` from now unless `stop`ped first."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("deadlines watch tasks")
        loop = task.get_loop()
        self._deadlines[task] = loop.time() + timeout_s
        if self._tick is None:
            self._tick = loop.call_later(TICK_S, self._expire)
        return task

    def stop(self, task: asyncio.Task[object]) -> bool:
        """Stop watching; True when the deadline passed and the task was cancelled for it (the
        cancellation is then withdrawn: the caller reports a timeout instead)."""
        self._deadlines.pop(task, None)
        if task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def _expire(self) -> None:
        self._tick = None
        if not self._deadlines:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[task]
                self._expired.add(task)
                task.cancel()
        if self._deadlines:
            self._tick = loop.call_later(TICK_S, self._expire)
