"""The router's own log: a line per invocation and per refusal, none repeating a REPORT line,
and a stderr nobody reads never stalls the event loop (lines are dropped and counted)."""

from __future__ import annotations

import subprocess
import time

import httpx

from tests.conftest import ADMIN_TOKEN, Router, cleanup, logged, start_router, unique, wait_ready


def test_a_stalled_stderr_never_stalls_the_router() -> None:
    namespace = unique("stalled")
    # stdout and stderr go to a pipe this test never reads: it fills at 64 KiB.
    process, port, log = start_router(namespace, output=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        router = Router(namespace, port, process, log)
        name = unique("loud")
        router.put_function(name, handler="testfns:record", isolation="thread")
        with httpx.Client(
            base_url=url, timeout=10, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as client:
            for n in range(1500):  # a REPORT line each: far more than the pipe holds
                response = client.post(f"/api/v1/functions/{name}/invoke", json={"n": n})
                assert response.status_code == 200, response.text
        time.sleep(2)  # the monitor publishes the count
        assert router.metric("router_log_lines_dropped_total") > 0
    finally:
        process.kill()
        process.wait()
        cleanup(namespace)


def test_access_lines_only_for_the_admin_api_and_refusals(router: Router) -> None:
    name, trigger = unique("quiet"), unique("quiet")
    router.put_function(name, handler="testfns:record", isolation="thread")
    router.put_trigger(trigger, function=name, type="webhook")
    marker = unique("path")
    assert router.http.post(f"/hooks/{trigger}?{marker}", json={}).status_code == 200
    assert router.http.post(f"/hooks/{marker}", json={}).status_code == 404
    text = logged(router.log, f"/hooks/{marker}", "REPORT RequestId")
    assert f"/hooks/{marker}" in text  # the refusal
    assert f"/hooks/{trigger}" not in text  # the webhook that ran: its REPORT line says it
    assert "REPORT RequestId" in text
