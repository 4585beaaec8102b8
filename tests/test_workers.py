"""`serve --workers N`: several router processes on one port under a supervisor that restarts a
dead one and passes SIGTERM on for a graceful drain; /metrics reports every worker's counts
whichever worker answers the scrape."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from router.settings import SettingsError, parse_workers
from router.supervisor import MAX_BACKOFF_S, backoff_s
from tests.conftest import ROOT, Router, cleanup, logged, running_router, start_router, unique

GRACE_S = 6
# The grace, the shutdown's margin (4 s), the exit's (1 s), and room for a busy machine.
EXITS_WITHIN_S = GRACE_S + 5 + 15


def workers_of(supervisor: int) -> set[int]:
    """The supervisor's live child processes: its workers (not one that died and waits to be
    reaped)."""
    path = Path(f"/proc/{supervisor}/task/{supervisor}/children")
    try:
        children = {int(pid) for pid in path.read_text().split()}
    except OSError:
        return set()
    return {pid for pid in children if _state(pid) not in ("Z", "")}


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def fresh(
    router: Router, method: str, path: str, json: object = None, token: bool = True
) -> httpx.Response:
    """A request on a connection of its own: the kernel picks the worker for each connection."""
    headers = {"Connection": "close", **(router.http.headers if token else {})}
    return httpx.request(method, router.url + path, headers=headers, json=json, timeout=30)


def wait_workers(router: Router, count: int, timeout: float = 60) -> set[int]:
    """Until `count` workers run and every one answers ready (twenty answers in a row on new
    connections, so each worker is asked with near certainty); their pids."""
    deadline, in_a_row = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and in_a_row < 20:
        ready = len(workers_of(router.process.pid)) == count
        ready = ready and _answers(router, "/readyz")
        in_a_row = in_a_row + 1 if ready else 0
        if not ready:
            time.sleep(0.1)
    assert in_a_row >= 20, (
        f"{count} workers not ready within {timeout} s:\n{router.log.read_text()}"
    )
    return workers_of(router.process.pid)


def _answers(router: Router, path: str) -> bool:
    try:
        return fresh(router, "GET", path).status_code == 200
    except httpx.HTTPError:
        return False


def pid_hook(router: Router) -> str:
    function, trigger = unique("pid"), unique("hook")
    router.put_function(function, handler="testfns:pid_async", isolation="inline")
    router.put_trigger(trigger, function=function, type="webhook", mode="sync")
    return trigger


def call_hook(router: Router, trigger: str) -> int:
    response = fresh(router, "POST", f"/hooks/{trigger}", json={})
    assert response.status_code == 200, response.text
    pid: int = response.json()["pid"]
    return pid


def invocations(router: Router, function: str) -> float:
    return router.metric("router_invocations_total", function=function, outcome="succeeded")


def wait_count(router: Router, function: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while invocations(router, function) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def function_of(router: Router, trigger: str) -> str:
    function: str = router.http.get(f"/api/v1/triggers/{trigger}").json()["function"]
    return function


@pytest.fixture
def two_workers() -> Iterator[Router]:
    with running_router("workers", ROUTER_WORKERS="2", ROUTER_SHUTDOWN_GRACE_S=str(GRACE_S)) as r:
        wait_workers(r, 2)
        yield r


def test_two_workers_answer_webhooks_and_admin_calls_on_one_port(two_workers: Router) -> None:
    router = two_workers
    workers = workers_of(router.process.pid)
    trigger = pid_hook(router)
    seen = {call_hook(router, trigger) for _ in range(60)}
    assert seen == workers  # both workers ran some; nothing else did
    for _ in range(10):
        assert fresh(router, "GET", "/api/v1/functions").status_code == 200
    assert fresh(router, "GET", "/api/v1/functions", token=False).status_code == 401


def test_metrics_sum_every_worker_whichever_answers(two_workers: Router) -> None:
    router = two_workers
    trigger = pid_hook(router)
    function = function_of(router, trigger)
    count = 40
    seen = {call_hook(router, trigger) for _ in range(count)}
    assert len(seen) == 2  # each worker counted a part: one worker's count alone is short
    wait_count(router, function, count)  # each worker writes its counts down once a second
    for _ in range(10):  # each scrape on a new connection: answered by either worker
        text = fresh(router, "GET", "/metrics").text
        assert _sample(text, "router_invocations_total", function, 'outcome="succeeded"') == count
        assert _sample(text, "router_invocation_duration_seconds_count", function) == count
        webhook = f'router_webhook_requests_total{{status="200",trigger="{trigger}"}} '
        assert f"{webhook}{float(count)}" in text


def _sample(text: str, name: str, function: str, *labels: str) -> float:
    for line in text.splitlines():
        labelled = line.startswith(name + "{") and f'function="{function}"' in line
        if labelled and all(label in line for label in labels):
            return float(line.rpartition(" ")[2])
    return 0.0


def test_a_killed_worker_is_started_again_and_its_counts_stay(two_workers: Router) -> None:
    router = two_workers
    trigger = pid_hook(router)
    function = function_of(router, trigger)
    seen = {call_hook(router, trigger) for _ in range(30)}
    assert len(seen) == 2
    wait_count(router, function, 30)  # every worker has written its counts down
    victim = min(seen)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not (workers := workers_of(router.process.pid)) - seen and time.monotonic() < deadline:
        time.sleep(0.1)  # until the new worker runs
    workers = wait_workers(router, 2)
    assert victim not in workers
    after = {call_hook(router, trigger) for _ in range(30)}
    assert after == workers  # the new worker serves too
    wait_count(router, function, 60)
    # The killed worker's 15-odd invocations are still counted: the sum never went down.
    assert [invocations(router, function) for _ in range(5)] == [60.0] * 5
    text = logged(router.log, "was killed by SIGKILL")
    assert "worker 1 was killed by SIGKILL" in text or "worker 2 was killed by SIGKILL" in text


def test_sigterm_drains_every_worker_and_exits_0(two_workers: Router) -> None:
    router = two_workers
    function = unique("slow")
    router.put_function(function, handler="testfns:slow_async", isolation="inline", timeout_s=10)
    workers = workers_of(router.process.pid)
    answers: list[httpx.Response] = []

    def invoke() -> None:
        answers.append(
            fresh(router, "POST", f"/api/v1/functions/{function}/invoke", json={"sleep": 3})
        )

    callers = [threading.Thread(target=invoke) for _ in range(6)]
    for caller in callers:
        caller.start()
    deadline = time.monotonic() + 10
    while running(router, function) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)  # until all six run (in both workers, with near certainty)
    assert running(router, function) == 6  # every worker's running invocations, summed
    router.process.send_signal(signal.SIGTERM)
    assert router.process.wait(timeout=EXITS_WITHIN_S) == 0
    for caller in callers:
        caller.join(10)
    assert [a.status_code for a in answers] == [200] * 6  # drained, not cut off
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def running(router: Router, function: str) -> float:
    return router.metric("router_concurrent_executions", function=function)


def test_workers_auto_starts_one_per_core() -> None:
    with running_router("workers-auto", ROUTER_WORKERS="auto") as router:
        assert len(wait_workers(router, os.cpu_count() or 1)) == (os.cpu_count() or 1)


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5", ""])
def test_bad_worker_counts_are_refused(value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve", f"--workers={value}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode != 0
    assert (
        "ROUTER_WORKERS (--workers) must be a whole number of 1 or more, or auto" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_a_bad_router_workers_variable_is_refused() -> None:
    env = {**os.environ, "ROUTER_WORKERS": "many"}
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "got 'many'" in result.stderr


def test_a_taken_port_ends_the_start_at_once() -> None:
    namespace = unique("workers-port")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        process, _port, log = start_router(namespace, ROUTER_PORT=str(busy), ROUTER_WORKERS="2")
        try:
            assert process.wait(timeout=30) != 0
        finally:
            cleanup(namespace)
    text = log.read_text()
    assert f"port {busy} is in use" in text
    assert "worker 1 started" not in text  # refused before any worker ran
    assert "Traceback" not in text


def test_a_worker_that_cannot_start_ends_the_start() -> None:
    """No crash loop for a start that can never succeed (a handler module that is missing)."""
    namespace = unique("workers-bad")
    process, _port, log = start_router(
        namespace, ROUTER_WORKERS="2", ROUTER_HANDLERS="no_such_module_here"
    )
    try:
        assert process.wait(timeout=60) != 0
    finally:
        cleanup(namespace)
    text = log.read_text()
    assert "before it listened: stopping" in text
    assert "starting it again" not in text


@pytest.mark.parametrize(
    ("failures", "seconds"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (50, MAX_BACKOFF_S)],
)
def test_backoff_doubles_up_to_a_bound(failures: int, seconds: float) -> None:
    assert backoff_s(failures) == seconds


@pytest.mark.parametrize(
    ("raw", "count"),
    [("1", 1), ("2", 2), (" 3 ", 3), ("auto", os.cpu_count()), ("AUTO", os.cpu_count())],
)
def test_worker_counts_parse(raw: str, count: int) -> None:
    assert parse_workers(raw) == count


@pytest.mark.parametrize("raw", ["0", "-1", "x", "1.5", "", "auto2"])
def test_bad_worker_counts_do_not_parse(raw: str) -> None:
    with pytest.raises(SettingsError, match="ROUTER_WORKERS"):
        parse_workers(raw)
