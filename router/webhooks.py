"""`/hooks/{trigger}`: webhook ingress, answered as a Lambda function URL would answer.

A path below the trigger (`/hooks/{trigger}/users/1`) reaches the same function with
`rawPath` `/users/1`, so an app written for a function URL routes as it does there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import HttpVersion, web

from router import answers, encodings, events, filters
from router.amqp import BrokerError
from router.bodies import BodyTooLarge, decoded, read_limited, received_body
from router.guards import error_response
from router.invocation import InvocationService, Throttling
from router.jsonhttp import json_error, unavailable
from router.lifecycle import Lifecycle
from router.metrics import Metrics
from router.registry import Registry, Snapshot
from router.specs import WebhookTrigger, split_target
from router.webhookchecks import WebhookChecks

log = logging.getLogger("router.webhooks")


@dataclass(slots=True)
class HookRequest:
    """One webhook request that passed routing, on its way through the checks to the function."""

    request: web.Request
    name: str  # the trigger's
    trigger: WebhookTrigger
    snapshot: Snapshot  # the registry as it was when the request came: one view throughout
    headers: dict[str, str]  # joined as Lambda joins them
    body: bytes  # as sent until verified, then decoded


class Webhooks:
    """The `/hooks/` route. The sync path is the router's hottest: each step is a plain call
    where it can be, and one await where it must be."""

    def __init__(
        self,
        registry: Registry,
        lifecycle: Lifecycle,
        invocations: InvocationService,
        checks: WebhookChecks,
        metrics: Metrics,
        body_timeout_s: float,
    ) -> None:
        self._registry = registry
        self._lifecycle = lifecycle
        self._invocations = invocations
        self._checks = checks
        self._metrics = metrics
        self._body_timeout_s = body_timeout_s

    async def hook(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["trigger"]
        try:
            response = await self._answer(request, name)
        except Exception as exc:  # guarded here rather than by a wrapper: one coroutine less
            response = error_response(request, exc)
        known = name in self._registry.snapshot.triggers
        self._metrics.webhook(name if known else "", response.status)
        return response

    async def _answer(self, request: web.Request, name: str) -> web.StreamResponse:
        """Checks in order of cost: nothing reaches RabbitMQ or a handler unverified, and
        nothing is inflated before the bytes as sent are verified."""
        if not self._registry.loaded:
            return unavailable("the registry is not loaded yet")
        if self._lifecycle.draining:
            return unavailable("this replica is shutting down")
        snapshot = self._registry.snapshot
        trigger = snapshot.triggers.get(name)
        if not isinstance(trigger, WebhookTrigger) or snapshot.routing(trigger.function) is None:
            return json_error(404, f"no webhook trigger named {name!r}")
        if "*" not in trigger.methods and request.method not in trigger.methods:
            allowed = ", ".join(trigger.methods)
            return json_error(
                405, f"trigger {name!r} accepts {allowed}", headers={"Allow": allowed}
            )
        body = _received(request, trigger)  # a small body is all there: no await, no timer
        if body is None:
            body = await self._read(request, trigger)
        if isinstance(body, web.Response):
            return body
        headers = events.joined_headers(request.headers.items())
        incoming = HookRequest(request, name, trigger, snapshot, headers, body)
        claimed = await self._checks.check(incoming) if _guarded(trigger) else None
        if isinstance(claimed, web.Response):
            return claimed
        refused = _decode(incoming)
        response = refused if refused is not None else await self._dispatch(incoming)
        if claimed is not None and response.status >= 300:
            await self._checks.release(name, claimed)  # not accepted: the sender's retry may run
        return response

    async def _read(self, request: web.Request, trigger: WebhookTrigger) -> bytes | web.Response:
        """The rest of a body still on its way, within ROUTER_BODY_TIMEOUT_S."""
        try:
            async with asyncio.timeout(self._body_timeout_s):
                return await read_limited(request, trigger.max_body_bytes)
        except BodyTooLarge:
            return _too_large(trigger)
        except TimeoutError:
            return json_error(408, f"body not received within {self._body_timeout_s:.0f} s")

    async def _dispatch(self, incoming: HookRequest) -> web.StreamResponse:
        trigger = incoming.trigger
        request_id = events.new_id()
        http = _http_request(incoming.request, incoming.body)
        event = events.webhook_event(http, request_id, events.utcnow(), joined=incoming.headers)
        if trigger.filter is not None and not filters.matches(trigger.filter, filter_view(event)):
            self._metrics.filtered_out(split_target(trigger.function)[0], incoming.name)
            return web.json_response(
                {"filtered": True}, status=202 if trigger.mode == "async" else 200
            )
        event_id = events.webhook_event_id(event["headers"])
        target = incoming.snapshot.resolve(trigger.function)
        assert target is not None  # checked by _answer, on this same snapshot
        if trigger.mode == "async":
            try:
                invocation_id = await self._invocations.enqueue(
                    target,
                    event,
                    event_id=event_id,
                    trigger=incoming.name,
                    invocation_id=request_id,
                )
            except BrokerError as exc:
                log.warning("async webhook %s not accepted: %s", incoming.name, exc)
                return unavailable("the event could not be queued; retry later")
            return web.json_response({"invocation_id": invocation_id}, status=202)
        outcome = await self._invocations.run(target, event, request_id, event_id=event_id)
        if isinstance(outcome, Throttling):
            return answers.throttled(outcome)
        return answers.function_url(outcome, request_id)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/hooks/{trigger}", self.hook),
            web.route("*", "/hooks/{trigger}/{tail:.*}", self.hook),
        ]


def _received(request: web.Request, trigger: WebhookTrigger) -> bytes | web.Response | None:
    """The body if all of it is there, the refusal of one too large, or None: more to come."""
    try:
        return received_body(request, trigger.max_body_bytes)
    except BodyTooLarge:
        return _too_large(trigger)


def _too_large(trigger: WebhookTrigger) -> web.Response:
    return json_error(413, f"body is larger than {trigger.max_body_bytes} bytes")


def _decode(incoming: HookRequest) -> web.Response | None:
    """The verified body with its `Content-Encoding` undone; or the response refusing it."""
    try:
        incoming.body = decoded(incoming.request, incoming.body, incoming.trigger.max_body_bytes)
    except encodings.EncodingError as exc:
        return json_error(exc.status, str(exc), headers=exc.headers)
    return None


def _guarded(trigger: WebhookTrigger) -> bool:
    """Whether `WebhookChecks.check` has anything to check (an unsigned, unlimited trigger
    does not)."""
    return trigger.verify.scheme != "none" or trigger.rate_limit is not None


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
