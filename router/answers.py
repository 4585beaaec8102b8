"""An invocation's outcome as the router's own HTTP answers: a function URL's (the webhook
route) and the admin API's Invoke's. Both turn a throttled call away alike; they differ on a
handler's error, which a function URL never shows its caller. (The Lambda API answers in
Lambda's shapes: router.lambdaapi.invoke.)"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from router import events
from router.executors import Outcome
from router.invocation import Throttling
from router.jsonhttp import json_error, json_response


def throttled(throttling: Throttling) -> web.Response:
    return json_error(
        429,
        f"function {throttling.function!r} is at its concurrency limit; retry later",
        headers={"Retry-After": "1"},
    )


def function_url(outcome: Outcome, request_id: str) -> web.Response:
    """A function error answers 502 (504 on timeout) without leaking the handler's details."""
    headers = {"X-Request-Id": request_id}
    if outcome.status == "timed_out":
        return json_error(504, "the function timed out", request_id=request_id, headers=headers)
    if outcome.error is not None:
        return json_error(
            502,
            "the function failed",
            errorType=outcome.error.type,
            request_id=request_id,
            headers=headers,
        )
    try:
        mapped = events.checked_response(outcome.result)
    except events.ResponseError as exc:
        return json_error(502, str(exc), request_id=request_id, headers=headers)
    answer = CIMultiDict(mapped.headers)
    answer["X-Request-Id"] = request_id  # ours, whatever the function said
    return web.Response(status=mapped.status, body=mapped.body, headers=answer)


def invoked(outcome: Outcome, request_id: str, version: str) -> web.Response:
    """The admin API's: the result as JSON, or the handler's error (502, 504 on timeout)."""
    executed = {"X-Request-Id": request_id, "X-Amz-Executed-Version": version}
    if outcome.error is not None:
        status = 504 if outcome.status == "timed_out" else 502
        return json_response(
            {**outcome.error.as_dict(), "requestId": request_id},
            status=status,
            headers={"X-Amz-Function-Error": "Unhandled", **executed},
        )
    return json_response(outcome.result, headers=executed)
