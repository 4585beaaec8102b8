"""Invocation output captured per request id, read back through the API and CLI; usage in
GB-seconds; the router's own logs as JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import ROOT, Router, logged, unique


def logs(router: Router, function: str, **query: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        entries: list[dict[str, Any]] = router.http.get(
            f"/api/v1/functions/{function}/logs", params=query
        ).json()["entries"]
        if entries or time.monotonic() > deadline:
            return entries
        time.sleep(0.1)


@pytest.mark.parametrize("isolation", ["process", "thread", "inline"])
def test_output_is_captured_per_invocation(router: Router, isolation: str) -> None:
    function = unique("talk")
    handler = "testfns:chatty_async" if isolation == "inline" else "testfns:chatty"
    router.put_function(function, handler=handler, isolation=isolation)
    first = router.http.post(f"/api/v1/functions/{function}/invoke", json={"n": 1})
    second = router.http.post(f"/api/v1/functions/{function}/invoke", json={"n": 2})
    assert first.status_code == second.status_code == 200
    request_id = first.headers["X-Request-Id"]
    entries = logs(router, function, request_id=request_id)
    assert len(entries) == 1
    text = entries[0]["text"]
    assert text.startswith(f"START RequestId: {request_id}")
    assert "printed 1" in text
    assert "to stderr 1" in text
    assert "logged 1" in text
    assert "printed 2" not in text
    assert f"END RequestId: {request_id}" in text
    assert "REPORT RequestId:" in text
    assert "Billed Duration" in text
    both = logs(router, function)
    assert [e["request_id"] for e in both][-2:] == [request_id, second.headers["X-Request-Id"]]


def test_errors_are_in_the_log_and_follow_reads_on(router: Router) -> None:
    function = unique("talk")
    router.put_function(function, handler="testfns:fail", isolation="thread")
    router.http.post(f"/api/v1/functions/{function}/invoke", json={})
    first = logs(router, function)
    assert "[ERROR] ValueError: boom" in first[0]["text"]
    router.http.post(f"/api/v1/functions/{function}/invoke", json={})
    deadline = time.monotonic() + 10
    later: list[dict[str, Any]] = []
    while not later and time.monotonic() < deadline:
        later = router.http.get(
            f"/api/v1/functions/{function}/logs", params={"after": first[-1]["id"]}
        ).json()["entries"]
    assert len(later) == 1
    cli = subprocess.run(
        [sys.executable, "-m", "router", "logs", function, "--url", router.url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert cli.returncode == 0
    assert cli.stdout.count("START RequestId") == 2
    too_big = str(2**64)  # Redis refuses a stream id part past 64 bits, and "(" + the last id
    last = f"{2**64 - 1}-{2**64 - 1}"
    for after in ("yesterday", "28-", "-1", "\uff11\uff12", too_big, f"1-{too_big}", last):
        bad = router.http.get(f"/api/v1/functions/{function}/logs", params={"after": after})
        assert bad.status_code == 400, after


def test_usage_reports_gb_seconds(router: Router) -> None:
    function = unique("bill")
    router.put_function(
        function, handler="testfns:slow", isolation="thread", memory_mb=512, timeout_s=5
    )
    for _ in range(2):
        router.http.post(f"/api/v1/functions/{function}/invoke", json={"sleep": 0.2})
    report = router.http.get("/api/v1/usage", params={"since": "1h"}).json()
    row = next(r for r in report["functions"] if r["function"] == function)
    assert row["invocations"] == 2
    assert 400 <= row["billed_duration_ms"] < 1000
    assert row["gb_seconds"] == pytest.approx(row["billed_duration_ms"] / 1000 * 0.5, rel=1e-3)
    assert report["total"]["invocations"] >= 2
    cli = subprocess.run(
        [sys.executable, "-m", "router", "usage", "--since", "2h", "--url", router.url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert function in [r["function"] for r in json.loads(cli.stdout)["functions"]]
    assert router.http.get("/api/v1/usage", params={"since": "soon"}).status_code == 400


def test_router_logs_are_json_lines_with_request_ids(router: Router) -> None:
    function = unique("json")
    router.put_function(function, handler="testfns:record", isolation="thread")
    request_id = router.http.post(f"/api/v1/functions/{function}/invoke", json={}).headers[
        "X-Request-Id"
    ]
    text = logged(router.log, f'"request_id":"{request_id}"')
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == request_id]
    # REPORT at INFO; START and END are DEBUG here (they are in the invocation's own log).
    assert {line["message"].split()[0] for line in mine} == {"REPORT"}
    assert all(line["function"] == function for line in mine)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
