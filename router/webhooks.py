"""`/hooks/{trigger}`: webhook ingress, answered as a Lambda function URL would answer.

A path below the trigger (`/hooks/{trigger}/users/1`) reaches the same function with
`rawPath` `/users/1`, so an app written for a function URL routes as it does there.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import time
from typing import Any

import orjson
from aiohttp import HttpVersion, web
from multidict import CIMultiDict

from router import encodings, events, filters, signatures
from router.amqp import BrokerError
from router.executors import Outcome
from router.guards import error_response
from router.lambdaapi.gateway import VERIFIER
from router.registry import Snapshot
from router.responses import (
    BodyTooLarge,
    decoded,
    json_error,
    read_limited,
    received_body,
    unavailable,
)
from router.services import Services, services
from router.sigv4 import AuthError, Message
from router.slots import Throttled
from router.specs import WebhookTrigger, split_target

log = logging.getLogger("router.webhooks")


async def hook(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    name = request.match_info["trigger"]
    try:
        response = await _answer(request, svc, name)
    except Exception as exc:  # guarded here rather than by a wrapper: one coroutine less
        response = error_response(request, exc)
    known = name in svc.registry.snapshot.triggers
    svc.metrics.webhook(name if known else "", response.status)
    return response


async def _answer(request: web.Request, svc: Services, name: str) -> web.StreamResponse:
    """Checks in order of cost: nothing reaches RabbitMQ or a handler unverified, and nothing
    is inflated before the bytes as sent are verified."""
    if not svc.registry.loaded:
        return unavailable("the registry is not loaded yet")
    if svc.draining:
        return unavailable("this replica is shutting down")
    snapshot = svc.registry.snapshot
    trigger = snapshot.triggers.get(name)
    if not isinstance(trigger, WebhookTrigger) or snapshot.routing(trigger.function) is None:
        return json_error(404, f"no webhook trigger named {name!r}")
    if "*" not in trigger.methods and request.method not in trigger.methods:
        allowed = ", ".join(trigger.methods)
        return json_error(405, f"trigger {name!r} accepts {allowed}", headers={"Allow": allowed})
    body = await _body(request, svc, trigger)
    if isinstance(body, web.Response):
        return body
    headers = events.joined_headers(request.headers.items())
    claimed = (
        await _guard(request, svc, name, trigger, headers, body) if _guarded(trigger) else None
    )
    if isinstance(claimed, web.Response):
        return claimed
    content = _decoded(request, trigger, body)
    response: web.StreamResponse
    if isinstance(content, web.Response):
        response = content
    else:
        response = await _dispatch(request, svc, snapshot, name, trigger, headers, content)
    if claimed is not None and response.status >= 300:
        await svc.replays.release(name, claimed)  # not accepted: the sender's retry may run
    return response


async def _body(
    request: web.Request, svc: Services, trigger: WebhookTrigger
) -> bytes | web.Response:
    """The body, or the response refusing it. A small body has usually arrived with its
    request: taken at once, it costs no timer armed and disarmed for the timeout."""
    try:
        body = received_body(request, trigger.max_body_bytes)
        if body is not None:
            return body
        async with asyncio.timeout(svc.settings.body_timeout_s):
            return await read_limited(request, trigger.max_body_bytes)
    except BodyTooLarge:
        return json_error(413, f"body is larger than {trigger.max_body_bytes} bytes")
    except TimeoutError:
        return json_error(408, f"body not received within {svc.settings.body_timeout_s:.0f} s")


def _decoded(request: web.Request, trigger: WebhookTrigger, body: bytes) -> bytes | web.Response:
    """The verified body with its `Content-Encoding` undone, or the response refusing it."""
    try:
        return decoded(request, body, trigger.max_body_bytes)
    except encodings.EncodingError as exc:
        return json_error(exc.status, str(exc), headers=exc.headers)


def _aws_iam(request: web.Request, svc: Services, name: str, body: bytes) -> web.Response | None:
    """A function URL with AuthType AWS_IAM: the request is SigV4-signed (service `lambda`)
    with a key of ROUTER_AWS_CREDENTIALS, over the bytes as sent. None lets it through."""
    verifier = request.app[VERIFIER]
    message = Message.of(request.method, request.raw_path, request.headers.items())
    try:
        verifier.verify(verifier.claimed(message), message, hashlib.sha256(body).hexdigest())
    except AuthError as exc:
        svc.metrics.rejected(name, "signature")
        return json_error(403, str(exc).split("\n", 1)[0], type=exc.error_type)
    return None


def _guarded(trigger: WebhookTrigger) -> bool:
    """Whether `_guard` has anything to check (an unsigned, unlimited trigger does not)."""
    return trigger.verify.scheme != "none" or trigger.rate_limit is not None


async def _guard(
    request: web.Request,
    svc: Services,
    name: str,
    trigger: WebhookTrigger,
    headers: dict[str, str],
    body: bytes,
) -> str | web.Response | None:
    """Signature, rate limit and replay checks. Returns the claimed replay key (None when
    the trigger is unverified) or the response refusing the request."""
    replay_key = None
    if trigger.verify.scheme == "aws-iam":
        refused = _aws_iam(request, svc, name, body)
        if refused is not None:
            return refused
    elif trigger.verify.scheme in signatures.SCHEMES:
        verdict = signatures.SCHEMES[trigger.verify.scheme](
            trigger.verify.check(), headers, body, time.time()
        )
        if not verdict.ok:
            svc.metrics.rejected(name, verdict.reason)
            message = "missing signature headers" if verdict.status == 400 else "invalid signature"
            return json_error(verdict.status, message)
        replay_key = verdict.replay_key
    if trigger.rate_limit is not None:
        wait_s = await svc.rate_limiter.retry_after(name, trigger.rate_limit)
        if wait_s is not None:
            svc.metrics.rejected(name, "rate_limited")
            return json_error(
                429,
                f"trigger {name!r} is over its rate limit",
                headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
            )
    window_s = trigger.verify.window_s()
    if replay_key is not None and not await svc.replays.claim(name, replay_key, window_s):
        svc.metrics.rejected(name, "replay")
        return web.json_response({"duplicate": True}, status=200)
    return replay_key


async def _dispatch(
    request: web.Request,
    svc: Services,
    snapshot: Snapshot,
    name: str,
    trigger: WebhookTrigger,
    headers: dict[str, str],
    body: bytes,
) -> web.StreamResponse:
    request_id = events.new_id()
    http = _http_request(request, body)
    event = events.webhook_event(http, request_id, events.utcnow(), joined=headers)
    if trigger.filter is not None and not filters.matches(trigger.filter, filter_view(event)):
        svc.metrics.filtered.labels(split_target(trigger.function)[0], name).inc()
        return web.json_response({"filtered": True}, status=202 if trigger.mode == "async" else 200)
    event_id = events.webhook_event_id(event["headers"])
    if trigger.mode == "async":
        return await _enqueue(svc, snapshot, name, trigger, event, event_id, request_id)
    return await _run(svc, snapshot, trigger, event, request_id, event_id)


async def _enqueue(
    svc: Services,
    snapshot: Snapshot,
    name: str,
    trigger: WebhookTrigger,
    event: dict[str, Any],
    event_id: str | None,
    request_id: str,
) -> web.StreamResponse:
    target = snapshot.resolve(trigger.function)
    assert target is not None  # checked by _answer, on this same snapshot
    try:
        invocation_id = await svc.ingress.enqueue(
            target.function, target.version, event, event_id, name, invocation_id=request_id
        )
    except BrokerError as exc:
        log.warning("async webhook %s not accepted: %s", name, exc)
        return unavailable("the event could not be queued; retry later")
    return web.json_response({"invocation_id": invocation_id}, status=202)


async def _run(
    svc: Services,
    snapshot: Snapshot,
    trigger: WebhookTrigger,
    event: dict[str, Any],
    request_id: str,
    event_id: str | None,
) -> web.StreamResponse:
    target = snapshot.resolve(trigger.function)
    assert target is not None  # checked by _answer, on this same snapshot
    try:
        outcome = await svc.invoker.invoke(
            target.function,
            target.spec,
            event,
            request_id,
            event_id=event_id,
            wait=False,
            version=target.version,
            qualifier=target.qualifier,
        )
    except Throttled:
        return throttled(target.function)
    return function_url_answer(outcome, request_id)


def throttled(function: str) -> web.Response:
    return json_error(
        429,
        f"function {function!r} is at its concurrency limit; retry later",
        headers={"Retry-After": "1"},
    )


def function_url_answer(outcome: Outcome, request_id: str) -> web.Response:
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


def filter_view(event: dict[str, Any]) -> dict[str, Any]:
    """The event as filters see it: a JSON body decoded, as Lambda event filtering does."""
    body = event.get("body")
    if not isinstance(body, str) or event.get("isBase64Encoded"):
        return event
    try:
        return {**event, "body": orjson.loads(body)}
    except orjson.JSONDecodeError:
        return event


def _http_request(request: web.Request, body: bytes) -> events.HttpRequest:
    tail = request.match_info.get("tail", "")
    peer = request.remote or ""
    return events.HttpRequest(
        method=request.method,
        path="/" + tail,
        query_string=request.raw_path.partition("?")[2],  # as received, as Lambda gives it
        headers=request.headers.items(),
        body=body,
        source_ip=peer,
        host=request.host,
        protocol=_protocol(request.version),
    )


@functools.lru_cache(maxsize=4)
def _protocol(version: HttpVersion) -> str:
    return f"HTTP/{version.major}.{version.minor}"


def routes() -> list[web.RouteDef]:
    return [
        web.route("*", "/hooks/{trigger}", hook),
        web.route("*", "/hooks/{trigger}/{tail:.*}", hook),
    ]
