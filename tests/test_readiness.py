"""Point 1 and 7: readiness with and without the services, and the metrics endpoint."""

from __future__ import annotations

import time

import httpx

from tests.conftest import Router, free_port, start_router, stop, unique


def test_ready_when_services_reached(router: Router) -> None:
    response = router.http.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert router.http.get("/healthz").json() == {"status": "ok"}


def test_not_ready_names_the_reason() -> None:
    dead_port = free_port()
    process, port, log = start_router(
        unique("unready"), ROUTER_REDIS_URL=f"redis://127.0.0.1:{dead_port}/0"
    )
    try:
        deadline = time.monotonic() + 20
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert response is not None, log.read_text()
        assert response.status_code == 503
        reasons = " ".join(response.json()["reasons"])
        assert "redis unreachable" in reasons
        assert "registry not loaded" in reasons
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        hook = httpx.post(f"http://127.0.0.1:{port}/hooks/anything", json={})
        assert hook.status_code == 503
        assert hook.headers["retry-after"]
    finally:
        stop(process)


def test_metrics_exposes_the_contract(router: Router) -> None:
    function, trigger = unique("met"), unique("met")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(trigger, function=function, type="webhook")
    assert router.http.post(f"/hooks/{trigger}", json={}).status_code == 200
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline:
        text = router.http.get("/metrics").text
        if f'router_queue_depth{{function="{function}"}}' in text:
            break
        time.sleep(0.1)
    assert f'router_invocations_total{{function="{function}",outcome="succeeded"}} 1.0' in text
    assert f'router_invocation_duration_seconds_count{{function="{function}"}} 1.0' in text
    assert f'router_queue_depth{{function="{function}"}} 0.0' in text
    assert f'router_webhook_requests_total{{status="200",trigger="{trigger}"}} 1.0' in text
    assert f'router_billed_gb_seconds_total{{function="{function}"}}' in text
    unknown = router.http.post(f"/hooks/{unique('nope')}", json={})
    assert unknown.status_code == 404
    assert router.metric("router_webhook_requests_total", trigger="", status="404") >= 1
