"""Logs as Lambda keeps them: every invocation's START, END and REPORT lines, the newest first
found, filters, following from the end, the request id on handler log lines, and tracebacks of
failures that webhook senders never see."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from tests.conftest import ROOT, Router, unique


def entries(router: Router, function: str, **query: Any) -> list[dict[str, Any]]:
    response = router.http.get(f"/api/v1/functions/{function}/logs", params=query)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["entries"]
    return found


def settled(router: Router, function: str, count: int, **query: Any) -> list[dict[str, Any]]:
    """The entries once `count` are there (they are written behind, within a second)."""
    deadline = time.monotonic() + 10
    found = entries(router, function, **query)
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        found = entries(router, function, **query)
    return found


def test_every_invocation_is_kept_even_a_silent_one(router: Router) -> None:
    name = unique("silent")
    router.put_function(name, handler="testfns:record", isolation="thread")
    ids = [
        router.http.post(f"/api/v1/functions/{name}/invoke", json={"n": n}).headers["X-Request-Id"]
        for n in range(3)
    ]
    found = settled(router, name, 3)
    assert [e["request_id"] for e in found] == ids
    for entry, request_id in zip(found, ids, strict=True):
        assert entry["text"].startswith(f"START RequestId: {request_id} Version: $LATEST\n")
        assert f"END RequestId: {request_id}\nREPORT RequestId: {request_id}\t" in entry["text"]


def test_limit_gives_the_newest_and_filters_narrow(router: Router) -> None:
    name = unique("newest")
    router.put_function(name, handler="testfns:chatty", isolation="thread")
    for n in range(1, 6):
        router.http.post(f"/api/v1/functions/{name}/invoke", json={"n": n}).raise_for_status()
    settled(router, name, 5)
    newest = entries(router, name, limit=2)
    assert ["printed 4" in newest[0]["text"], "printed 5" in newest[1]["text"]] == [True, True]
    only = entries(router, name, filter="printed 2")
    assert len(only) == 1
    assert "logged 2" in only[0]["text"]
    assert entries(router, name, since="1h", limit=10)[-1] == newest[-1]
    assert entries(router, name, since="2099-01-01T00:00:00") == []
    bad = router.http.get(f"/api/v1/functions/{name}/logs", params={"since": "soon"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "since"


def test_log_lines_carry_the_request_id_in_lambdas_format(router: Router) -> None:
    for isolation in ("thread", "process"):
        name = unique("fmt")
        router.put_function(name, handler="testfns:chatty", isolation=isolation)
        response = router.http.post(f"/api/v1/functions/{name}/invoke", json={"n": 7})
        request_id = response.headers["X-Request-Id"]
        text = settled(router, name, 1)[0]["text"]
        assert any(
            line.startswith("[WARNING]\t") and line.split("\t")[2:3] == [request_id]
            for line in text.splitlines()
        ), (isolation, text)


def test_a_sync_failure_is_in_the_logs_with_its_traceback(router: Router) -> None:
    name, trigger = unique("tb"), unique("tb")
    router.put_function(name, handler="testfns:fail", isolation="process")
    router.put_trigger(trigger, function=name, type="webhook")
    answer = router.http.post(f"/hooks/{trigger}", json={})
    assert answer.status_code == 502
    assert "Traceback" not in answer.text  # the sender sees no traceback
    request_id = answer.json()["request_id"]
    text = settled(router, name, 1, request_id=request_id)[0]["text"]
    assert "[ERROR] ValueError: boom" in text
    assert "Traceback (most recent call last):" in text
    assert 'raise ValueError("boom")' in text


def test_a_function_keeps_as_many_entries_as_it_says(router: Router) -> None:
    name = unique("keep")
    router.put_function(name, handler="testfns:record", isolation="thread", log_max_entries=3)
    for n in range(40):
        router.http.post(f"/api/v1/functions/{name}/invoke", json={"n": n}).raise_for_status()
    time.sleep(1)
    length = router.redis.xlen(f"{router.namespace}:logs:{name}")
    assert length < 40  # trimmed (approximately, as Redis trims streams cheaply)


def test_follow_starts_at_the_end_and_shows_new_entries(router: Router) -> None:
    name = unique("follow")
    router.put_function(name, handler="testfns:chatty", isolation="thread")
    router.http.post(f"/api/v1/functions/{name}/invoke", json={"n": 1}).raise_for_status()
    settled(router, name, 1)
    follower = subprocess.Popen(
        [sys.executable, "-m", "router", "logs", name, "--limit", "1", "-f", "--url", router.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        time.sleep(2)  # it has printed the newest entry and is following
        router.http.post(f"/api/v1/functions/{name}/invoke", json={"n": 2}).raise_for_status()
        sent = time.monotonic()
        seen = ""
        assert follower.stdout is not None
        while "printed 2" not in seen and time.monotonic() - sent < 5:
            seen += follower.stdout.readline()
    finally:
        follower.terminate()
        follower.wait(10)
    assert "printed 1" in seen  # the newest entry first
    assert "printed 2" in seen  # new output, while following (it polls twice a second)
