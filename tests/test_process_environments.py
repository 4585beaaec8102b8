"""Process environments driven directly (no router): the frame protocol both ways, reuse,
REPORT figures, containment of crashes and timeouts, and hand-over at `concurrency.max`."""

from __future__ import annotations

import asyncio
import mmap
import os
import signal
import struct
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from router.bundles import Bundles
from router.executors import Call, Outcome
from router.executors.cells import Cells
from router.executors.launcher import Launcher
from router.executors.process import _Pipes
from router.executors.worker import Frames, PeakMemory
from router.metrics import Metrics
from router.names import Names
from router.pool import Pool, Slots
from router.specs import LATEST, FunctionSpec

HEADER = struct.Struct(">I")
FNS = "tests.fnlib.testfns"


def frame(document: Any) -> bytes:
    body = orjson.dumps(document)
    return HEADER.pack(len(body)) + body


def spec(handler: str, timeout_s: float = 5, max_: int = 1) -> FunctionSpec:
    return FunctionSpec(
        handler=f"{FNS}:{handler}", timeout_s=timeout_s, concurrency={"min": 0, "max": max_}
    )


def with_pool(
    handler: str, test: Callable[[Pool], Awaitable[None]], timeout_s: float = 5, max_: int = 1
) -> None:
    async def run() -> None:
        metrics = Metrics()
        slots = Slots("envtest", max_, metrics)
        pool = Pool(
            "envtest",
            LATEST,
            spec(handler, timeout_s, max_),
            slots,
            metrics,
            asyncio.Semaphore(2),
            launcher(),
        )
        try:
            await test(pool)
        finally:
            await pool.close()

    asyncio.run(run())


def launcher() -> Launcher:
    """Environments of code on the router's path (never touch Redis, so none is needed)."""
    directory = Path(tempfile.mkdtemp()) / "code"
    return Launcher(Bundles(Redis(), Names("envtest"), directory), Cells("envtest"))


async def call(pool: Pool, event: Any) -> tuple[Outcome, float, float | None]:
    outcome = await pool.run(Call(pool.function, pool.spec, event, "req-1"))
    return outcome, outcome.max_memory_mb, outcome.init_ms


def test_large_events_and_results_cross_in_pieces() -> None:
    payload = {"text": "x" * (3 * 1024 * 1024), "n": list(range(1000))}

    async def test(pool: Pool) -> None:
        outcome, memory_mb, init_ms = await call(pool, {"body": orjson.dumps(payload).decode()})
        assert outcome.status == "succeeded", outcome.error
        assert outcome.result == payload
        assert memory_mb > 0
        assert init_ms is not None
        assert init_ms > 0

    with_pool("respond", test)


def test_an_environment_is_reused_and_reports_its_peak_memory() -> None:
    async def test(pool: Pool) -> None:
        first, small_mb, _ = await call(pool, {"blocks": 0})
        second, big_mb, init_ms = await call(pool, {"blocks": 3})
        third, after_mb, _ = await call(pool, {"blocks": 0})
        assert [first.status, second.status, third.status] == ["succeeded"] * 3
        assert init_ms is None  # warm
        assert big_mb >= small_mb + 40  # three 16 MB blocks were resident at once
        assert after_mb == big_mb  # a peak, not the current size
        assert pool.total == 1

    with_pool("hog", test)


def test_output_is_captured_per_call() -> None:
    async def test(pool: Pool) -> None:
        for n in (1, 2):
            outcome, _, _ = await call(pool, {"n": n})
            assert outcome.result == "said"
            assert f"printed {n}" in outcome.logs
            assert f"logged {n}" in outcome.logs
            assert f"printed {3 - n}" not in outcome.logs

    with_pool("chatty", test)


def test_a_crash_mid_call_is_worker_lost_and_the_environment_replaced() -> None:
    async def test(pool: Pool) -> None:
        outcome, _, _ = await call(pool, {"how": "exit"})
        assert outcome.status == "failed"
        assert outcome.error is not None
        assert outcome.error.type == "worker_lost"
        assert "exit code 3" in outcome.error.message
        assert pool.total == 0

    with_pool("crash", test)


def test_an_idle_environment_killed_from_outside_fails_no_call() -> None:
    async def test(pool: Pool) -> None:
        first, _, _ = await call(pool, {"sleep": 0})
        os.kill(first.result, signal.SIGKILL)
        await asyncio.sleep(0.3)
        second, _, init_ms = await call(pool, {"sleep": 0})
        assert second.status == "succeeded", second.error
        assert second.result != first.result
        assert init_ms is not None

    with_pool("sleep_then_pid", test)


def test_a_call_past_its_timeout_kills_the_environment() -> None:
    async def test(pool: Pool) -> None:
        outcome, _, _ = await call(pool, {})
        assert outcome.status == "timed_out"
        assert 250 <= outcome.duration_ms < 2000
        assert pool.total == 0
        assert not pool.idle

    with_pool("hang", test, timeout_s=0.3)


def test_callers_over_max_wait_for_the_environment_in_use() -> None:
    async def test(pool: Pool) -> None:
        results = await asyncio.gather(*(call(pool, {"sleep": 0.2}) for _ in range(3)))
        pids = {outcome.result for outcome, _, _ in results}
        assert len(pids) == 1  # one environment, handed from caller to caller
        assert pool.total == 1
        assert len(pool.idle) == 1

    with_pool("sleep_then_pid", test)


def test_replies_are_parsed_however_the_pipe_splits_them() -> None:
    async def test() -> None:
        pipes = _Pipes(asyncio.get_running_loop())
        replies = [{"n": n, "text": "é" * n} for n in range(3)]
        stream = b"".join(frame(reply) for reply in replies)
        got = []
        for _reply in replies:
            future = pipes.expect()
            while not future.done():
                pipes.pipe_data_received(1, stream[:3])  # headers split too
                stream = stream[3:]
            got.append(future.result())
        assert got == replies
        lost = pipes.expect()
        pipes.pipe_connection_lost(1, None)
        assert isinstance(lost.exception(), ConnectionError)
        assert isinstance(pipes.expect().exception(), ConnectionError)

    asyncio.run(test())


def test_requests_are_read_whole_from_pieces() -> None:
    read, write = os.pipe()
    small = [{"request_id": str(n), "event": {"k": "v" * n}} for n in (0, 1)]
    big = {"request_id": "2", "event": {"k": "v" * 200_000}}  # more than the pipe holds
    stream = b"".join(frame(request) for request in small)
    try:
        frames = Frames(read)
        for piece in (stream[:2], stream[2:40], stream[40:]):
            os.write(write, piece)
        assert [frames.read(), frames.read()] == small
        writer = threading.Thread(target=os.write, args=(write, frame(big)))
        writer.start()
        assert frames.read() == big
        writer.join()
    finally:
        os.close(write)
    assert frames.read() is None  # the router closed our input
    os.close(read)


def test_peak_memory_follows_growth_and_stays_at_the_peak() -> None:
    peak = PeakMemory()
    assert peak.read() == peak.read()
    with open("/proc/self/statm") as statm:
        resident_mb = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    with mmap.mmap(-1, 32 * 1024 * 1024) as block:  # fresh pages, not the heap's free ones
        block[::4096] = b"\1" * (len(block) // 4096)  # touched: resident
        grown = peak.read()
    assert grown >= resident_mb + 30
    assert peak.read() >= grown


def test_an_abandoned_call_takes_its_environment_with_it() -> None:
    async def test(pool: Pool) -> None:
        running = asyncio.ensure_future(call(pool, {"sleep": 0.5}))
        await asyncio.sleep(0.2)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        assert pool.total == 0  # killed: its late answer would have been the next call's
        outcome, _, init_ms = await call(pool, {"sleep": 0})
        assert outcome.status == "succeeded"
        assert init_ms is not None

    with_pool("sleep_then_pid", test)


def test_a_failed_start_ahead_of_demand_wakes_the_callers_waiting_for_it() -> None:
    """A caller that found the pool full of environments still starting waits for one; when
    that start fails (the handler cannot be imported), the caller must not wait for good: it
    tries a start of its own and answers with the import error."""

    async def test(pool: Pool) -> None:
        growing = asyncio.ensure_future(pool.grow(1))  # the scaler, ahead of demand
        for _ in range(2):  # the scaler's task, then the start it spawns
            await asyncio.sleep(0)
        assert pool.starting == 1  # full: the caller below has to wait for this start
        outcome, _, _ = await asyncio.wait_for(call(pool, {}), 20)
        await growing
        assert outcome.status == "failed"
        assert outcome.error is not None
        assert "no_such_handler" in outcome.error.message
        assert pool.total == 0

    with_pool("no_such_handler", test)
