"""Point 6: Lambda's Invoke through the admin API, sync and async."""

from __future__ import annotations

from tests.conftest import Router, unique


def test_sync_invoke_returns_the_result(router: Router) -> None:
    function = unique("inv")
    router.put_function(function, handler="testfns:record", isolation="thread")
    response = router.http.post(f"/api/v1/functions/{function}/invoke", json={"a": 1})
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert router.wait_ledger(function, 1)[0]["event"] == {"a": 1}
    assert response.headers["X-Amz-Executed-Version"] == "$LATEST"


def test_async_def_handler_runs_on_the_loop(router: Router) -> None:
    function = unique("inv")
    router.put_function(function, handler="testfns:record_async", isolation="inline")
    response = router.http.post(f"/api/v1/functions/{function}/invoke", json=[1, 2, 3])
    assert response.json() == {"ok": True, "async": True}


def test_sync_invoke_error_has_type_message_trace(router: Router) -> None:
    function = unique("inv")
    router.put_function(function, handler="testfns:fail", isolation="thread")
    response = router.http.post(f"/api/v1/functions/{function}/invoke", json={})
    assert response.status_code == 502
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    body = response.json()
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom"
    assert any("raise ValueError" in line for line in body["stackTrace"])


def test_unserialisable_result_is_a_marshal_error(router: Router) -> None:
    function = unique("inv")
    router.put_function(function, handler="testfns:unserialisable", isolation="thread")
    response = router.http.post(f"/api/v1/functions/{function}/invoke", json={})
    assert response.status_code == 502
    assert response.json()["errorType"] == "Runtime.MarshalError"


def test_missing_handler_attribute_is_reported(router: Router) -> None:
    """Code on the router's path is checked when it is put (uploaded code, at its init)."""
    function = unique("inv")
    response = router.http.put(
        f"/api/v1/functions/{function}",
        json={"handler": "testfns:no_such_handler", "isolation": "thread"},
    )
    assert response.status_code == 400
    assert "Runtime.HandlerNotFound" in response.json()["error"]


def test_async_invoke_gives_an_invocation_id(router: Router) -> None:
    function = unique("inv")
    router.put_function(function, handler="testfns:record", isolation="thread")
    response = router.http.post(f"/api/v1/functions/{function}/invoke?mode=async", json={"b": 2})
    assert response.status_code == 202
    record = router.invocation(response.json()["invocation_id"], ("succeeded",))
    assert record["result"]["ok"] is True
    assert record["trigger"] is None


def test_invoke_errors(router: Router) -> None:
    assert router.http.post(f"/api/v1/functions/{unique('x')}/invoke", json={}).status_code == 404
    function = unique("inv")
    router.put_function(function, handler="testfns:record", isolation="thread")
    bad_mode = router.http.post(f"/api/v1/functions/{function}/invoke?mode=later", json={})
    assert bad_mode.status_code == 400
    assert bad_mode.json()["field"] == "mode"
    bad_json = router.http.post(f"/api/v1/functions/{function}/invoke", content=b"{")
    assert bad_json.status_code == 400
    assert router.ledger(function) == []


def test_lambdas_details_are_as_lambda_gives_them(router: Router) -> None:
    function = unique("details")
    router.put_function(function, handler="testfns:environment", timeout_s=2.5)
    names = ["AWS_LAMBDA_FUNCTION_TIMEOUT", "AWS_LAMBDA_LOG_STREAM_NAME"]
    seen = router.http.post(f"/api/v1/functions/{function}/invoke", json={"names": names}).json()
    assert seen["env"]["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "3"  # whole seconds
    assert seen["log_stream_name"] == seen["env"]["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert seen["function_version"] == "$LATEST"
    empty = router.http.post(
        f"/api/v1/functions/{function}/invoke",
        content=b"",
        headers={"Content-Type": "application/json"},
    )
    assert empty.status_code == 200, empty.text
    assert empty.json()["event"] == {}  # an empty payload is the event {}, as on Lambda
