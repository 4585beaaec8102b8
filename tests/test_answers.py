"""How an invocation's outcome is answered over HTTP by the webhook route (as a function URL)
and by the admin API's Invoke: the same for a throttled call, apart on a handler's error."""

from __future__ import annotations

import orjson
import pytest

from router import answers
from router.executors import ErrorInfo, Outcome
from router.invocation import Throttling

FAILED = Outcome("failed", 3.0, error=ErrorInfo("ValueError", "secret detail", ["line 1"]))
TIMED_OUT = Outcome("timed_out", 3000.0, error=ErrorInfo("TimeoutError", "too slow"))
SUCCEEDED = Outcome("succeeded", 1.0, result={"statusCode": 201, "body": "made"})


def test_a_throttled_call_is_a_429_to_retry_in_a_second() -> None:
    response = answers.throttled(Throttling("fn"))
    assert response.status == 429
    assert response.headers["Retry-After"] == "1"
    assert isinstance(response.body, bytes)
    assert "'fn' is at its concurrency limit" in orjson.loads(response.body)["error"]


@pytest.mark.parametrize(("outcome", "status"), [(FAILED, 502), (TIMED_OUT, 504)])
def test_a_function_url_hides_the_handlers_error(outcome: Outcome, status: int) -> None:
    response = answers.function_url(outcome, "r-1")
    assert response.status == status
    assert response.headers["X-Request-Id"] == "r-1"
    assert isinstance(response.body, bytes)
    assert b"secret detail" not in response.body
    assert b"line 1" not in response.body


def test_a_function_url_answers_what_the_function_returned() -> None:
    response = answers.function_url(SUCCEEDED, "r-1")
    assert (response.status, response.body) == (201, b"made")
    assert response.headers["X-Request-Id"] == "r-1"


@pytest.mark.parametrize(("outcome", "status"), [(FAILED, 502), (TIMED_OUT, 504)])
def test_the_admin_invoke_shows_the_handlers_error(outcome: Outcome, status: int) -> None:
    response = answers.invoked(outcome, "r-1", "3")
    assert response.status == status
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    assert response.headers["X-Amz-Executed-Version"] == "3"
    assert isinstance(response.body, bytes)
    body = orjson.loads(response.body)
    assert outcome.error is not None
    assert (body["errorType"], body["requestId"]) == (outcome.error.type, "r-1")


def test_the_admin_invoke_answers_the_result_as_json() -> None:
    response = answers.invoked(SUCCEEDED, "r-1", "$LATEST")
    assert response.status == 200
    assert isinstance(response.body, bytes)
    assert orjson.loads(response.body) == SUCCEEDED.result
    assert response.headers["X-Request-Id"] == "r-1"
