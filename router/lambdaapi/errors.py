"""Errors as the AWS SDKs parse them: the `x-amzn-ErrorType` header names the exception class
(boto3 raises `client.exceptions.ResourceNotFoundException`, the JavaScript SDK throws one of
that name) and the JSON body carries the message."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from router.jsonhttp import HttpError
from router.registration import Unavailable
from router.registry import Conflict, NotFound, PreconditionFailed, RegistryError
from router.sigv4 import AuthError
from router.slots import Throttled

log = logging.getLogger("router.lambdaapi")


class LambdaError(Exception):
    def __init__(
        self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.headers = headers or {}


def invalid(message: str) -> LambdaError:
    return LambdaError(400, "InvalidParameterValueException", message)


def not_found(message: str) -> LambdaError:
    return LambdaError(404, "ResourceNotFoundException", message)


def conflict(message: str) -> LambdaError:
    return LambdaError(409, "ResourceConflictException", message)


def too_large(message: str) -> LambdaError:
    return LambdaError(413, "RequestTooLargeException", message)


def throttled(function: str) -> LambdaError:
    return LambdaError(
        429,
        "TooManyRequestsException",
        f"Rate Exceeded: function {function!r} is at its concurrency limit",
        {"Retry-After": "1"},
    )


# What the router's own errors are, in Lambda's words.
BY_STATUS = {
    400: "InvalidParameterValueException",
    404: "ResourceNotFoundException",
    409: "ResourceConflictException",
    412: "PreconditionFailedException",
    413: "RequestTooLargeException",
    415: "UnsupportedMediaTypeException",
}


def response(error: LambdaError, request_id: str) -> web.Response:
    # Both spellings of the message: the service model uses `Message` for some exceptions and
    # `message` for others, and each SDK reads the one its model names.
    body: dict[str, Any] = {
        "Type": "Service" if error.status >= 500 else "User",
        "message": str(error),
        "Message": str(error),
    }
    if error.error_type == "TooManyRequestsException":
        body["Reason"] = "ReservedFunctionConcurrentInvocationLimitExceeded"
    return web.Response(
        status=error.status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers={
            "x-amzn-ErrorType": error.error_type,
            "x-amzn-RequestId": request_id,
            **error.headers,
        },
    )


def translated(exc: Exception, operation: str) -> LambdaError:
    """Any exception a handler raised, as the Lambda error it is."""
    if isinstance(exc, LambdaError):
        return exc
    if isinstance(exc, AuthError):
        return LambdaError(403, exc.error_type, str(exc))
    if isinstance(exc, Throttled):
        return throttled(str(exc))
    if isinstance(exc, NotFound):
        return not_found(str(exc))
    if isinstance(exc, Conflict):
        return conflict(str(exc))
    if isinstance(exc, PreconditionFailed):
        return LambdaError(412, "PreconditionFailedException", str(exc))
    if isinstance(exc, Unavailable | RedisError):
        return LambdaError(
            503,
            "ServiceException",
            f"the router cannot reach its store: {exc}",
            {"Retry-After": "5"},
        )
    if isinstance(exc, RegistryError):
        field = f" ({exc.field})" if exc.field else ""
        return invalid(f"{exc}{field}")
    if isinstance(exc, HttpError):
        return LambdaError(
            exc.status, BY_STATUS.get(exc.status, "InvalidRequestContentException"), str(exc)
        )
    log.error("unhandled error in %s", operation, exc_info=exc)
    return LambdaError(500, "ServiceException", f"{operation} failed; see the router's log")
