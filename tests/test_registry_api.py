"""Point 2: functions and triggers through the admin API, with validation and clear errors."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from tests.conftest import GITHUB_SECRET, Router, unique


def test_function_crud_bumps_version_only_on_change(router: Router) -> None:
    name = unique("crud")
    created = router.http.put(
        f"/api/v1/functions/{name}", json={"handler": "testfns:record", "timeout_s": 10}
    )
    assert created.status_code == 201
    assert created.json()["version"] == 1
    same = router.http.put(f"/api/v1/functions/{name}", json=created.json())  # GET output PUT back
    assert same.status_code == 200
    assert same.json()["version"] == 1
    changed = router.put_function(name, handler="testfns:record", timeout_s=20)
    assert changed.json()["version"] == 2
    got = router.http.get(f"/api/v1/functions/{name}").json()
    assert got["timeout_s"] == 20
    assert got["isolation"] == "process"
    assert got["concurrency"] == {"min": 0, "max": 10, "per_replica": None}
    assert got["retry"]["max_attempts"] == 3
    listed = router.http.get("/api/v1/functions").json()["functions"]
    assert name in [f["name"] for f in listed]
    assert router.http.delete(f"/api/v1/functions/{name}").status_code == 204
    assert router.http.get(f"/api/v1/functions/{name}").status_code == 404


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"handler": "no-colon"}, "handler"),
        ({"handler": "testfns:record", "timeout_s": 0}, "timeout_s"),
        ({"handler": "testfns:record", "timeout_s": 901}, "timeout_s"),
        ({"handler": "testfns:record", "isolation": "vm"}, "isolation"),
        ({"handler": "testfns:record", "concurrency": {"min": 5, "max": 2}}, "concurrency"),
        ({"handler": "testfns:record", "retry": {"max_attempts": 0}}, "retry.max_attempts"),
        ({"handler": "testfns:record", "memroy_mb": 128}, "memroy_mb"),
        ({"handler": "testfns:record", "env": {"1BAD": "x"}}, "env"),
        ({"handler": "no_such_module_anywhere:handler"}, "handler"),
        ({}, "handler"),
    ],
)
def test_invalid_function_is_400_naming_the_field(
    router: Router, spec: dict[str, object], field: str
) -> None:
    name = unique("bad")
    response = router.http.put(f"/api/v1/functions/{name}", json=spec)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["field"].startswith(field), body
    assert field.split(".")[0] in body["error"] or "handler" in body["error"]
    assert router.http.get(f"/api/v1/functions/{name}").status_code == 404  # nothing half-made


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b"", 400), (b"[1, 2]", 400), (b'"text"', 400)],
)
def test_malformed_bodies_are_400_json(router: Router, body: bytes, status: int) -> None:
    response = router.http.put(f"/api/v1/functions/{unique('m')}", content=body)
    assert response.status_code == status
    assert "error" in response.json()


def test_trigger_rules(router: Router) -> None:
    function, trigger = unique("fn"), unique("tr")
    missing = router.http.put(
        f"/api/v1/triggers/{trigger}",
        json={"function": function, "type": "webhook", "verify": {"scheme": "none"}},
    )
    assert missing.status_code == 400
    assert missing.json()["field"] == "function"
    assert router.http.get(f"/api/v1/triggers/{trigger}").status_code == 404
    router.put_function(function, handler="testfns:record")
    bad_type = router.http.put(
        f"/api/v1/triggers/{trigger}", json={"function": function, "type": "smtp"}
    )
    assert bad_type.status_code == 400
    bad_filter = router.http.put(
        f"/api/v1/triggers/{trigger}",
        json={
            "function": function,
            "type": "webhook",
            "verify": {"scheme": "none"},
            "filter": {"body": {"region": "eu"}},
        },
    )
    assert bad_filter.status_code == 400
    assert "filter" in bad_filter.json()["field"]
    router.put_trigger(trigger, function=function, type="webhook", mode="sync")
    in_use = router.http.delete(f"/api/v1/functions/{function}")
    assert in_use.status_code == 409
    assert trigger in in_use.json()["error"]
    listed = router.http.get("/api/v1/triggers").json()["triggers"]
    assert any(t["name"] == trigger and t["function"] == function for t in listed)
    assert router.http.delete(f"/api/v1/triggers/{trigger}").status_code == 204
    assert router.http.delete(f"/api/v1/triggers/{trigger}").status_code == 404
    assert router.http.delete(f"/api/v1/functions/{function}").status_code == 204


def test_unknown_routes_and_methods_are_json(router: Router) -> None:
    assert router.http.get("/api/v1/nothing").status_code == 404
    wrong = router.http.post("/api/v1/functions/x", json={})
    assert wrong.status_code == 405
    assert "error" in wrong.json()
    hook = router.http.post(f"/hooks/{unique('none')}", json={})
    assert hook.status_code == 404
    assert "error" in hook.json()


def test_changes_reach_other_replicas_within_a_second(router: Router, namespace: str) -> None:
    from tests.conftest import start_router, stop, wait_ready

    process, port, log = start_router(namespace)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        function, trigger = unique("rep"), unique("rep")
        router.put_function(function, handler="testfns:record", isolation="thread")
        router.put_trigger(trigger, function=function, type="webhook")
        deadline = time.monotonic() + 1.0
        status = 0
        import httpx

        while time.monotonic() < deadline:
            status = httpx.post(f"http://127.0.0.1:{port}/hooks/{trigger}", json={}).status_code
            if status == 200:
                break
            time.sleep(0.05)
        assert status == 200
    finally:
        stop(process)


def test_decorated_handlers_are_registered_at_start(router: Router) -> None:
    spec = router.http.get("/api/v1/functions/github-push").json()
    assert spec["handler"] == "handlers.github:summarise"
    assert spec["timeout_s"] == 10
    trigger = router.http.get("/api/v1/triggers/github-push").json()
    assert trigger["function"] == "github-push"
    push = {
        "ref": "refs/heads/main",
        "repository": {"full_name": "acme/app"},
        "pusher": {"name": "ada"},
        "commits": [{"message": "Fix the thing\n\nbody"}],
    }
    body = json.dumps(push).encode()
    signature = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = router.http.post(
        "/hooks/github-push",
        content=body,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": unique("d"),
            "X-Hub-Signature-256": f"sha256={signature}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200
    assert response.json()["summary"] == "ada pushed 1 commit to acme/app@main: Fix the thing"


def test_a_handler_the_router_can_see_is_checked_at_put(router: Router) -> None:
    missing = router.http.put(
        f"/api/v1/functions/{unique('attr')}", json={"handler": "testfns:no_such_function"}
    )
    assert missing.status_code == 400
    assert missing.json()["field"] == "handler"
    assert "no_such_function" in missing.json()["error"]


def test_a_sync_failure_has_a_record_by_request_id(router: Router) -> None:
    name = unique("syncrec")
    router.put_function(name, handler="testfns:fail", isolation="thread")
    failed = router.http.post(f"/api/v1/functions/{name}/invoke", json={})
    request_id = failed.headers["X-Request-Id"]
    record = router.invocation(request_id, ("failed",))
    assert record["error"]["type"] == "ValueError"
    assert "Traceback" in record["error"]["traceback"]


def test_a_deleted_functions_gauges_go(router: Router) -> None:
    name = unique("gone")
    router.put_function(name, handler="testfns:record")

    def gauges() -> list[str]:
        prefixes = ("router_queue_depth", "router_dead_letter_queue_depth", "router_queue_con")
        return [
            line
            for line in router.http.get("/metrics").text.splitlines()
            if line.startswith(prefixes) and f'function="{name}"' in line
        ]

    deadline = time.monotonic() + 10
    while not gauges():
        assert time.monotonic() < deadline, "the new function's queue depth never appeared"
        time.sleep(0.2)
    router.http.delete(f"/api/v1/functions/{name}").raise_for_status()
    time.sleep(1.5)  # ticks of the scaler and the monitor come and go
    assert gauges() == []
