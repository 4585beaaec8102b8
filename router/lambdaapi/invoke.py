"""Invoke: RequestResponse runs now (200), Event goes through the function's queue as every
async invocation does (202), DryRun only checks (204). A handler's error is still a 200, with
`X-Amz-Function-Error: Unhandled` and Lambda's error payload."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from aiohttp import web

from router.amqp import BrokerError
from router.executors import Call, Outcome
from router.invocation import Throttling
from router.invoker import invocation_log
from router.lambdaapi import errors, shapes
from router.lambdaapi.gateway import Backend, LambdaRequest
from router.registry import Target

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024  # Lambda's, for the request and for the response
MAX_ASYNC_PAYLOAD = 1024 * 1024  # Lambda's for Event invocations
TAIL_BYTES = 4096
KINDS = ("RequestResponse", "Event", "DryRun")


async def invoke(call: LambdaRequest) -> web.StreamResponse:
    headers = call.request.headers
    kind = headers.get("X-Amz-Invocation-Type", "RequestResponse")
    if kind not in KINDS:
        raise errors.invalid(f"X-Amz-Invocation-Type must be one of {', '.join(KINDS)}")
    log_type = headers.get("X-Amz-Log-Type", "None")
    if log_type not in ("None", "Tail"):
        raise errors.invalid("X-Amz-Log-Type must be None or Tail")
    target = await resolved(call.backend, *call.target())
    if kind == "Event" and len(call.body) > MAX_ASYNC_PAYLOAD:
        raise errors.too_large(
            f"Request must be smaller than {MAX_ASYNC_PAYLOAD} bytes for an Event invocation"
        )
    event = _event(call.body)
    client_context = _client_context(headers.get("X-Amz-Client-Context"))
    executed = {"X-Amz-Executed-Version": target.version}
    if kind == "DryRun":
        return web.Response(status=204, headers=executed)
    if kind == "Event":
        return await _queued(call, target, event)
    outcome = await call.backend.invocations.run(
        target, event, call.request_id, client_context=client_context
    )
    if isinstance(outcome, Throttling):
        raise errors.throttled(outcome.function)
    if log_type == "Tail":
        ran = Call(target.function, target.spec, event, call.request_id, version=target.version)
        tail = invocation_log(ran, outcome).encode()[-TAIL_BYTES:]
        executed["X-Amz-Log-Result"] = base64.b64encode(tail).decode()
    return _answer(outcome, call.request_id, executed)


async def resolved(backend: Backend, function: str, qualifier: str | None) -> Target:
    """From the replica's registry; a name it does not know yet (made a moment ago through
    another replica) is looked for again after a reload."""
    name = f"{function}:{qualifier}" if qualifier else function
    target = backend.registry.snapshot.resolve(name)
    if target is None:
        await backend.registry.refresh()
        target = backend.registry.snapshot.resolve(name)
    if target is None:
        raise errors.not_found(f"Function not found: {shapes.arn(function, qualifier)}")
    return target


async def _queued(call: LambdaRequest, target: Target, event: Any) -> web.StreamResponse:
    try:
        invocation_id = await call.backend.invocations.enqueue(
            target, event, invocation_id=call.request_id
        )
    except BrokerError as exc:
        raise errors.LambdaError(
            503, "ServiceException", f"the event could not be queued: {exc}", {"Retry-After": "5"}
        ) from exc
    return web.Response(status=202, headers={"x-amzn-RequestId": invocation_id})


def _answer(outcome: Outcome, request_id: str, headers: dict[str, str]) -> web.Response:
    if outcome.error is None:
        payload = orjson.dumps(outcome.result)
        if len(payload) <= MAX_SYNC_PAYLOAD:
            return web.Response(body=payload, content_type="application/json", headers=headers)
        failure = {
            "errorType": "Function.ResponseSizeTooLarge",
            "errorMessage": f"Response payload size ({len(payload)} bytes) exceeded maximum "
            f"allowed payload size ({MAX_SYNC_PAYLOAD} bytes).",
        }
    else:
        failure = {**outcome.error.as_dict(), "requestId": request_id}
    return web.Response(
        body=orjson.dumps(failure),
        content_type="application/json",
        headers={**headers, "X-Amz-Function-Error": "Unhandled"},
    )


def _event(body: bytes) -> Any:
    """The payload as the event: JSON, and an empty one is `{}`."""
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise errors.LambdaError(
            400, "InvalidRequestContentException", "Could not parse request body into json"
        ) from None


def _client_context(raw: str | None) -> str | None:
    """X-Amz-Client-Context: base64 of a JSON object, passed on to the handler as sent."""
    if raw is None:
        return None
    try:
        decoded = orjson.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        raise errors.invalid("X-Amz-Client-Context must be base64 of a JSON object") from None
    if not isinstance(decoded, dict):
        raise errors.invalid("X-Amz-Client-Context must be base64 of a JSON object")
    return raw
