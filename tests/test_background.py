"""Background loops: one that fails or returns is started again and counted; cancelling the
run ends every loop."""

from __future__ import annotations

import asyncio

from router.background import Background
from router.metrics import Metrics


def restarts(metrics: Metrics, loop: str) -> float | None:
    return metrics.registry.get_sample_value("router_background_restarts_total", {"loop": loop})


def test_a_failing_loop_is_restarted_and_counted_and_cancellation_ends_every_loop() -> None:
    async def main() -> None:
        metrics = Metrics()
        runs = {"flaky": 0, "returning": 0, "steady": 0}
        ended: list[str] = []
        third_run = asyncio.Event()

        async def flaky() -> None:
            runs["flaky"] += 1
            if runs["flaky"] >= 3:
                third_run.set()
                await forever("flaky")
            raise RuntimeError("a bug")

        async def returning() -> None:
            runs["returning"] += 1
            if runs["returning"] >= 2:
                await forever("returning")

        async def steady() -> None:
            runs["steady"] += 1
            await forever("steady")

        async def forever(name: str) -> None:
            try:
                await asyncio.Event().wait()
            finally:
                ended.append(name)

        loops = {"flaky": flaky, "returning": returning, "steady": steady}
        running = asyncio.create_task(Background(metrics, restart_s=0.01).run(loops))
        await asyncio.wait_for(third_run.wait(), 5)
        assert restarts(metrics, "flaky") == 2.0
        assert restarts(metrics, "returning") == 1.0
        assert restarts(metrics, "steady") == 0.0  # exported from the start
        assert runs["steady"] == 1

        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        assert running.cancelled()
        assert sorted(ended) == ["flaky", "returning", "steady"]

    asyncio.run(main())
