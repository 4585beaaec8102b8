"""Execution environments and pools, end to end: process isolation, limits, containment,
scaling with queue depth, scale to zero, throttling."""

from __future__ import annotations

import base64
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from router.scaler import plan
from tests.conftest import Router, logged, running_router, unique


@pytest.fixture(scope="module")
def fast_router() -> Iterator[Router]:
    """A router that lets environments go after one idle second, so scaling down is visible."""
    with running_router("pools", ROUTER_KEEP_WARM_S="1") as router:
        yield router


def invoke(router: Router, function: str, event: Any = None) -> httpx.Response:
    return router.http.post(f"/api/v1/functions/{function}/invoke", json=event or {})


def wait_metric(
    router: Router, name: str, value: float, timeout: float = 15, **labels: str
) -> float:
    deadline = time.monotonic() + timeout
    seen = router.metric(name, **labels)
    while time.monotonic() < deadline and seen != value:
        time.sleep(0.05)
        seen = router.metric(name, **labels)
    assert seen == value, f"{name}{labels} stayed {seen}, expected {value}"
    return seen


def test_process_environment_is_warm_and_isolated(fast_router: Router) -> None:
    function = unique("env")
    fast_router.put_function(
        function, handler="testfns:environment", memory_mb=256, timeout_s=5, env={"GREETING": "hej"}
    )
    first = invoke(fast_router, function).json()
    second = invoke(fast_router, function).json()
    assert first["pid"] == second["pid"], "the warm environment is reused"
    import os

    assert first["pid"] != fast_router.process.pid
    assert first["pid"] != os.getpid()
    assert first["env"]["AWS_LAMBDA_FUNCTION_NAME"] == function
    assert first["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert first["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert first["env"]["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert first["env"]["GREETING"] == "hej"
    assert 0 < first["remaining_ms"] <= 5000
    assert fast_router.metric("router_cold_starts_total", function=function) == 1
    log = logged(fast_router.log, f"INIT function={function}", "Max Memory Used")
    assert f"INIT function={function}" in log
    assert "Init Duration" in log
    assert "Max Memory Used" in log


def test_hanging_handler_is_killed_at_its_timeout(fast_router: Router) -> None:
    hanging, healthy = unique("hang"), unique("ok")
    fast_router.put_function(hanging, handler="testfns:hang", timeout_s=1)
    fast_router.put_function(healthy, handler="testfns:sleep_then_pid", timeout_s=10)
    results: dict[str, Any] = {}

    def run_healthy() -> None:
        results["healthy"] = invoke(fast_router, healthy, {"sleep": 1.5})

    worker = threading.Thread(target=run_healthy)
    worker.start()
    started = time.monotonic()
    response = invoke(fast_router, hanging)
    elapsed = time.monotonic() - started
    worker.join()
    assert response.status_code == 504
    assert response.json()["errorType"] == "TimeoutError"
    assert elapsed < 5
    assert results["healthy"].status_code == 200
    again = invoke(fast_router, hanging)  # a fresh environment replaced the killed one
    assert again.status_code == 504
    assert fast_router.metric("router_cold_starts_total", function=hanging) == 2


def test_memory_hog_is_stopped_at_its_limit(fast_router: Router) -> None:
    function = unique("hog")
    fast_router.put_function(function, handler="testfns:hog", memory_mb=64, timeout_s=20)
    response = invoke(fast_router, function, {"blocks": 32})  # 512 MB
    assert response.status_code == 502
    body = response.json()
    assert body["errorType"] == "out_of_memory"
    assert "64 MB" in body["errorMessage"]
    small = invoke(fast_router, function, {"blocks": 1})  # 16 MB fits, in a new environment
    assert small.status_code == 200
    assert small.json() == 1


@pytest.mark.parametrize(
    ("how", "cause"), [("exit", "exit code 3"), ("kill", "SIGKILL"), ("segfault", "SIGSEGV")]
)
def test_crashing_handler_is_contained(fast_router: Router, how: str, cause: str) -> None:
    crashing, healthy = unique("crash"), unique("ok")
    fast_router.put_function(crashing, handler="testfns:crash", timeout_s=5)
    fast_router.put_function(healthy, handler="testfns:environment", timeout_s=5)
    assert invoke(fast_router, healthy).status_code == 200
    response = invoke(fast_router, crashing, {"how": how})
    assert response.status_code == 502
    assert response.json()["errorType"] == "worker_lost"
    assert cause in response.json()["errorMessage"]
    assert invoke(fast_router, healthy).status_code == 200
    assert fast_router.http.get("/readyz").status_code == 200


def test_backlog_grows_the_pool_to_max_then_it_scales_to_zero(fast_router: Router) -> None:
    function = unique("scale")
    fast_router.put_function(
        function, handler="testfns:sleep_then_pid", timeout_s=10, concurrency={"min": 0, "max": 3}
    )
    ids = [
        fast_router.http.post(
            f"/api/v1/functions/{function}/invoke?mode=async", json={"sleep": 1}
        ).json()["invocation_id"]
        for _ in range(9)
    ]
    wait_metric(fast_router, "router_workers", 3, function=function, state="busy")
    records = [fast_router.invocation(i, ("succeeded",), timeout=30) for i in ids]
    assert len({r["result"] for r in records}) == 3, "three environments shared the work"
    wait_metric(fast_router, "router_workers", 0, function=function, state="idle")
    assert fast_router.metric("router_workers", function=function, state="busy") == 0
    assert fast_router.metric("router_cold_starts_total", function=function) == 3


def test_min_environments_stay_warm(fast_router: Router) -> None:
    function = unique("warm")
    fast_router.put_function(
        function, handler="testfns:sleep_then_pid", timeout_s=10, concurrency={"min": 2, "max": 4}
    )
    wait_metric(fast_router, "router_workers", 2, function=function, state="idle")
    time.sleep(2)  # past the keep-warm period: min environments are kept
    assert fast_router.metric("router_workers", function=function, state="idle") == 2
    response = invoke(fast_router, function, {"sleep": 0})
    assert response.status_code == 200
    log = fast_router.log.read_text()
    assert "(cold start)" not in "".join(line for line in log.splitlines() if function in line)


def test_sync_calls_over_max_are_throttled(fast_router: Router) -> None:
    function, trigger = unique("thr"), unique("thr")
    fast_router.put_function(
        function, handler="testfns:sleep_then_pid", timeout_s=10, concurrency={"min": 0, "max": 1}
    )
    fast_router.put_trigger(trigger, function=function, type="webhook")
    busy = threading.Thread(target=lambda: invoke(fast_router, function, {"sleep": 2}))
    busy.start()
    deadline = time.monotonic() + 10
    while fast_router.metric("router_concurrent_executions", function=function) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    response = invoke(fast_router, function, {"sleep": 0})
    hook = fast_router.http.post(f"/hooks/{trigger}", json={"sleep": 0})
    busy.join()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert hook.status_code == 429
    assert "concurrency" in response.json()["error"]
    assert fast_router.metric("router_throttles_total", function=function) == 2


def test_import_errors_are_reported_from_the_environment(fast_router: Router) -> None:
    """Uploaded code is loaded by its environment: a missing function fails its init."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("app.py", "def handler(event, context):\n    return 1\n")
    function = unique("init")
    fast_router.put_function(
        function,
        runtime="python3.11",
        handler="app.no_such_attribute",
        code={"zip": base64.b64encode(archive.getvalue()).decode()},
    )
    response = invoke(fast_router, function)
    assert response.status_code == 502
    assert response.json()["errorType"] == "Runtime.HandlerNotFound"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        # total, busy, demand, idle ages, min, max, keep warm -> (start, stop)
        ((0, 0, 0, [], 0, 10, 60), (0, 0)),  # idle at zero stays at zero
        ((0, 0, 5, [], 0, 10, 60), (5, 0)),  # backlog: up at once
        ((0, 0, 50, [], 0, 10, 60), (10, 0)),  # never above max
        ((2, 2, 7, [], 0, 3, 60), (1, 0)),
        ((0, 0, 0, [], 2, 10, 60), (2, 0)),  # min kept warm
        ((3, 0, 0, [5, 5, 5], 0, 10, 60), (0, 0)),  # idle, but not for long enough
        ((3, 0, 0, [61, 61, 5], 0, 10, 60), (0, 2)),  # only the long-idle go
        ((3, 0, 0, [61, 61, 61], 1, 10, 60), (0, 2)),  # never below min
        ((4, 3, 3, [100], 0, 10, 60), (0, 1)),  # the surplus idle one goes, no busy one
        ((4, 3, 4, [100], 0, 10, 60), (0, 0)),  # never below the demand
        ((5, 5, 0, [], 0, 3, 60), (0, 0)),  # max lowered: busy ones finish first
    ],
)
def test_scaling_plan(state: tuple[Any, ...], expected: tuple[int, int]) -> None:
    total, busy, demand, ages, minimum, maximum, keep_warm = state
    assert (
        plan(
            total=total,
            busy=busy,
            demand=demand,
            idle_ages=ages,
            minimum=minimum,
            maximum=maximum,
            keep_warm_s=keep_warm,
        )
        == expected
    )
