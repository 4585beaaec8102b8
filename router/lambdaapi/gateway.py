"""What every Lambda API operation goes through: SigV4 before anything else (the claim before
the body is read, the signature over the body as received), then the operation, and every
failure as the error the SDKs parse. Wrapped per route, like the router's other guards."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from redis.asyncio import Redis

from router.bodies import BodyTooLarge, read_limited
from router.events import new_id
from router.invocation import InvocationService
from router.lambdaapi import errors, shapes
from router.names import Names
from router.registration import Registration
from router.registry import Registry
from router.sigv4 import Message, Verifier

MAX_BODY = 1024 * 1024  # what an operation without code or a payload takes


@dataclass(frozen=True)
class Backend:
    """The parts of the router the Lambda API's operations work with."""

    registry: Registry
    registration: Registration
    invocations: InvocationService
    redis: Redis  # function URL configs and code bundles, under `names`
    names: Names
    verifier: Verifier  # of SigV4 signatures, against ROUTER_AWS_CREDENTIALS


@dataclass
class LambdaRequest:
    request: web.Request
    body: bytes
    access_key: str
    request_id: str
    backend: Backend

    @property
    def query(self) -> Any:
        return self.request.query

    def target(self) -> tuple[str, str | None]:
        """The function and qualifier named by the path's FunctionName and `?Qualifier=`."""
        qualifier = self.request.query.get("Qualifier") or None
        return shapes.function_name(self.request.match_info["function"], qualifier)

    def document(self) -> dict[str, Any]:
        """The JSON body (an object); empty is `{}`."""
        if not self.body.strip():
            return {}
        try:
            document = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise errors.invalid(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise errors.invalid("the request body must be a JSON object")
        return document


Operation = Callable[[LambdaRequest], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def operation(backend: Backend, name: str, run: Operation, max_body: int = MAX_BODY) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        request_id = new_id()
        try:
            call = await _authenticated(backend, request, request_id, name, max_body)
            response = await run(call)
        except Exception as exc:
            return errors.response(errors.translated(exc, name), request_id)
        response.headers["x-amzn-RequestId"] = request_id
        return response

    handle.__name__ = name
    return handle


async def _authenticated(
    backend: Backend, request: web.Request, request_id: str, name: str, max_body: int
) -> LambdaRequest:
    verifier = backend.verifier
    message = Message.of(request.method, request.raw_path, request.headers.items())
    claim = verifier.claimed(message)  # before reading anything a stranger sends
    try:
        body = await read_limited(request, max_body)
    except BodyTooLarge:
        raise errors.too_large(
            f"Request must be smaller than {max_body} bytes for the {name} operation"
        ) from None
    access_key = verifier.verify(claim, message, hashlib.sha256(body).hexdigest())
    if not backend.registry.loaded:
        raise errors.LambdaError(
            503, "ServiceException", "the registry is not loaded yet", {"Retry-After": "1"}
        )
    return LambdaRequest(request, body, access_key, request_id, backend)


def answer(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(document), content_type="application/json", headers=headers
    )
