"""Points 3 and 4: sync webhooks answered like function URLs; async ones queued then recorded."""

from __future__ import annotations

import base64
import json
import time

import pika

from tests.conftest import Router, unique


def sync_hook(router: Router, handler: str, **trigger: object) -> str:
    function, name = unique("fn"), unique("hook")
    router.put_function(function, handler=handler, timeout_s=10, isolation="thread")
    router.put_trigger(name, function=function, type="webhook", mode="sync", **trigger)
    return name


def test_function_url_event_and_context(router: Router) -> None:
    name = sync_hook(router, "testfns:record")
    function = router.http.get(f"/api/v1/triggers/{name}").json()["function"]
    response = router.http.post(
        f"/hooks/{name}/orders/7?x=1&x=2&y=",
        content=b'{"hello": "world"}',
        headers=[
            ("Content-Type", "application/json"),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
            ("Cookie", "a=1; b=2"),
            ("webhook-id", "msg_123"),
        ],
    )
    assert response.status_code == 200
    entry = router.wait_ledger(function, 1)[0]
    event, context = entry["event"], entry["context"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/orders/7"
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["headers"]["x-multi"] == "a,b"
    assert event["headers"]["content-type"] == "application/json"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["body"] == '{"hello": "world"}'
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"]["method"] == "POST"
    assert ctx["http"]["path"] == "/orders/7"
    assert ctx["http"]["sourceIp"] == "127.0.0.1"
    assert ctx["stage"] == "$default"
    assert ctx["routeKey"] == "$default"
    assert ctx["domainName"] == "127.0.0.1"
    assert isinstance(ctx["timeEpoch"], int)
    assert ctx["requestId"] == entry["request_id"] == response.headers["X-Request-Id"]
    assert context["function_name"] == function
    assert context["function_version"] == "$LATEST"
    assert context["request_id"] == entry["request_id"]
    assert context["memory_limit_in_mb"] == 128
    assert context["invoked_function_arn"].endswith(f":function:{function}")
    assert 0 < context["remaining_ms"] <= 10000


def test_binary_body_is_base64(router: Router) -> None:
    name = sync_hook(router, "testfns:record")
    function = router.http.get(f"/api/v1/triggers/{name}").json()["function"]
    payload = bytes(range(256))
    router.http.post(
        f"/hooks/{name}", content=payload, headers={"Content-Type": "application/octet-stream"}
    )
    event = router.wait_ledger(function, 1)[0]["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_lambda_tutorial_handler_runs_unmodified(router: Router) -> None:
    name = sync_hook(router, "testfns:lambda_tutorial")
    response = router.http.post(f"/hooks/{name}?name=Ada", json={"n": 1})
    assert response.status_code == 201
    assert response.headers["x-custom"] == "yes"
    assert response.headers["set-cookie"].startswith("session=abc")
    assert response.json() == {"message": "Hello, Ada!", "method": "POST", "received": {"n": 1}}


def test_response_mapping(router: Router) -> None:
    name = sync_hook(router, "testfns:respond")
    plain = router.http.post(f"/hooks/{name}", json={"status": "ok"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("application/json")
    assert plain.json() == {"status": "ok"}
    listed = router.http.post(f"/hooks/{name}", json=[1, 2])
    assert listed.json() == [1, 2]
    teapot = router.http.post(
        f"/hooks/{name}",
        json={
            "statusCode": 418,
            "headers": {"Content-Type": "text/plain"},
            "body": "short and stout",
        },
    )
    assert teapot.status_code == 418
    assert teapot.text == "short and stout"
    binary = router.http.post(
        f"/hooks/{name}",
        json={
            "statusCode": 200,
            "isBase64Encoded": True,
            "body": base64.b64encode(b"\x00\x01").decode(),
            "headers": {"Content-Type": "application/octet-stream"},
        },
    )
    assert binary.content == b"\x00\x01"
    invalid = router.http.post(f"/hooks/{name}", json={"statusCode": 1000})
    assert invalid.status_code == 502
    assert "statusCode" in invalid.json()["error"]


def test_function_errors_and_timeouts(router: Router) -> None:
    failing = sync_hook(router, "testfns:fail")
    response = router.http.post(f"/hooks/{failing}", json={})
    assert response.status_code == 502
    assert response.json()["errorType"] == "ValueError"
    assert "Traceback" not in response.text  # webhook senders never see handler internals
    function, slow = unique("slow"), unique("hook")
    router.put_function(function, handler="testfns:slow", timeout_s=0.5, isolation="thread")
    router.put_trigger(slow, function=function, type="webhook")
    timed_out = router.http.post(f"/hooks/{slow}", json={"sleep": 3})
    assert timed_out.status_code == 504
    assert router.metric("router_invocations_total", function=function, outcome="timed_out") == 1


def test_async_handlers_time_out_on_the_event_loop(router: Router) -> None:
    function, hook = unique("slow"), unique("hook")
    router.put_function(function, handler="testfns:slow_async", timeout_s=0.3, isolation="inline")
    router.put_trigger(hook, function=function, type="webhook")
    started = time.monotonic()
    timed_out = router.http.post(f"/hooks/{hook}", json={"sleep": 5})
    assert timed_out.status_code == 504
    assert time.monotonic() - started < 2
    assert timed_out.json()["error"] == "the function timed out"
    # The invoke API passes the event as sent (a webhook wraps it in a function URL event).
    in_time = router.http.post(f"/api/v1/functions/{function}/invoke", json={"sleep": 0.01})
    assert in_time.status_code == 200
    assert in_time.json() == {"slept": True}


def test_methods_and_size_limits(router: Router) -> None:
    name = sync_hook(router, "testfns:record")
    wrong = router.http.get(f"/hooks/{name}")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    any_method = sync_hook(router, "testfns:record", methods=["*"])
    assert router.http.get(f"/hooks/{any_method}?name=x").status_code == 200
    too_big = router.http.post(f"/hooks/{name}", content=b"x" * (6 * 1024 * 1024 + 1))
    assert too_big.status_code == 413


def test_filtered_webhook_is_not_run(router: Router) -> None:
    name = sync_hook(router, "testfns:record", filter={"body": {"action": ["opened"]}})
    function = router.http.get(f"/api/v1/triggers/{name}").json()["function"]
    skipped = router.http.post(f"/hooks/{name}", json={"action": "closed"})
    assert skipped.status_code == 200
    assert skipped.json() == {"filtered": True}
    ran = router.http.post(f"/hooks/{name}", json={"action": "opened"})
    assert ran.json()["ok"] is True
    assert len(router.wait_ledger(function, 1)) == 1
    assert router.metric("router_events_filtered_total", function=function, trigger=name) == 1


def async_hook(router: Router, handler: str, **spec: object) -> tuple[str, str]:
    function, name = unique("afn"), unique("ahook")
    router.put_function(function, handler=handler, isolation="thread", **spec)
    router.put_trigger(name, function=function, type="webhook", mode="async")
    return function, name


def test_async_webhook_is_queued_then_succeeds(router: Router) -> None:
    function, name = async_hook(router, "testfns:record")
    response = router.http.post(
        f"/hooks/{name}", json={"n": 1}, headers={"X-GitHub-Delivery": "delivery-42"}
    )
    assert response.status_code == 202
    invocation_id = response.json()["invocation_id"]
    record = router.invocation(invocation_id, ("succeeded",))
    assert record["function"] == function
    assert record["trigger"] == name
    assert record["event_id"] == "delivery-42"
    assert record["result"] == {"ok": True, "request_id": invocation_id}
    assert record["duration_ms"] > 0
    assert record["billed_duration_ms"] >= 1
    entries = router.wait_ledger(function, 1)
    assert len(entries) == 1
    assert entries[0]["request_id"] == invocation_id
    assert json.loads(entries[0]["event"]["body"]) == {"n": 1}


def test_async_failure_is_recorded_and_dead_lettered(
    router: Router, amqp: pika.channel.Channel
) -> None:
    function, name = async_hook(router, "testfns:fail", retry={"max_attempts": 2})
    invocation_id = router.http.post(f"/hooks/{name}", json={"n": 1}).json()["invocation_id"]
    record = router.invocation(invocation_id, ("dead_lettered",))
    assert record["error"]["type"] == "ValueError"
    assert record["error"]["message"] == "boom"
    assert "raise ValueError" in record["error"]["traceback"]
    assert record["attempt"] == 2
    assert len(router.ledger(function)) == 2  # exactly max_attempts runs
    method, properties, _body = amqp.basic_get(
        f"{router.namespace}.fn.{function}.dlq", auto_ack=True
    )
    assert method is not None, "the event is in the dead-letter queue"
    errors = json.loads(properties.headers["x-router-errors"])
    assert [e["attempt"] for e in errors] == [1, 2]
    assert all(e["type"] == "ValueError" for e in errors)
    assert properties.headers["x-router-invocation-id"] == invocation_id


def test_unknown_invocation_is_404(router: Router) -> None:
    response = router.http.get("/api/v1/invocations/nope")
    assert response.status_code == 404
    assert "error" in response.json()


def test_raw_query_string_is_as_received(router: Router) -> None:
    function, trigger = unique("rawq"), unique("rawq")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(trigger, function=function, type="webhook")
    raw = "a=%2Fb&c=d+e&x=%E2%9C%93"
    response = router.http.post(f"/hooks/{trigger}?{raw}", json={})
    assert response.status_code == 200, response.text
    event = router.wait_ledger(function, 1)[0]["event"]
    assert event["rawQueryString"] == raw
    assert event["queryStringParameters"] == {"a": "/b", "c": "d e", "x": "✓"}
