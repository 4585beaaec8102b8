"""One timer for all invocation timeouts: a task past its deadline is cancelled and told so, a
task that finished in time is left alone, and a cancellation that is not ours stays one."""

from __future__ import annotations

import asyncio
import time

import pytest

from router.deadlines import TICK_S, Deadlines


async def watched(deadlines: Deadlines, timeout_s: float, work_s: float) -> str:
    task = deadlines.start(timeout_s)
    try:
        await asyncio.sleep(work_s)
    except asyncio.CancelledError:
        if deadlines.stop(task):
            return "timed out"
        raise
    deadlines.stop(task)
    return "finished"


def test_a_task_past_its_deadline_is_cancelled_and_told() -> None:
    async def main() -> tuple[str, float]:
        started = time.monotonic()
        outcome = await watched(Deadlines(), 0.05, 5)
        return outcome, time.monotonic() - started

    outcome, took = asyncio.run(main())
    assert outcome == "timed out"
    assert took < 0.05 + 20 * TICK_S


def test_a_task_that_finished_in_time_is_not_cancelled_later() -> None:
    async def main() -> list[str]:
        deadlines = Deadlines()
        first = await watched(deadlines, 0.05, 0.01)
        await asyncio.sleep(0.1)  # past the first deadline: nothing may cancel this task now
        many = await asyncio.gather(*(watched(deadlines, 0.05, 0.2 * (i % 2)) for i in range(10)))
        return [first, *many]

    outcomes = asyncio.run(main())
    assert outcomes[0] == "finished"
    assert outcomes[1:] == ["finished", "timed out"] * 5


def test_a_cancellation_that_is_not_ours_propagates() -> None:
    async def main() -> None:
        task = asyncio.ensure_future(watched(Deadlines(), 5, 5))
        await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
