"""Event shapes: what a handler receives, and how a sync result becomes an HTTP response.

Webhook events are AWS Lambda function URL events (payload format 2.0); AMQP events are our own
dict. Both are pure functions of the request or message, so they are tested without I/O.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, NamedTuple

import orjson

RANDOM_CHUNK = 4096
_random: list[bytes] = []
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
TEXT_SUFFIXES = ("+json", "+xml", "x-www-form-urlencoded", "graphql", "yaml")
REQUEST_TIME = "%d/%b/%Y:%H:%M:%S %z"  # requestContext.time, as AWS writes it


class HttpRequest(NamedTuple):
    """The parts of an HTTP request a function URL event is made of.

    A named tuple rather than a frozen dataclass: as immutable, and built in a quarter of the
    time (a frozen dataclass sets each field through `object.__setattr__`), once per webhook.
    """

    method: str
    path: str
    query_string: str
    headers: Iterable[tuple[str, str]]
    body: bytes
    source_ip: str
    host: str
    protocol: str = "HTTP/1.1"
    api_id: str = "router"


class HttpResponse(NamedTuple):
    """A handler's result mapped to HTTP; a named tuple for the reason HttpRequest is one."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def new_id() -> str:
    """A random (version 4) UUID, as `str(uuid.uuid4())` gives but at a third of its cost:
    every webhook and invoke takes one. The random bytes come from os.urandom a few
    kilobytes at a time (`list.pop` hands each 16 out once, threads or not)."""
    try:
        digits = _random.pop().hex()
    except IndexError:
        chunk = os.urandom(RANDOM_CHUNK)
        _random.extend(chunk[at : at + 16] for at in range(0, RANDOM_CHUNK, 16))
        return new_id()
    variant = "89ab"[int(digits[16], 16) & 3]  # the two top bits of byte 8 are 10
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def joined_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names; repeated values comma-joined, as function URLs do."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


def query_parameters(raw: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    params: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


@functools.lru_cache(maxsize=256)
def is_text(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith(TEXT_TYPES) or kind.endswith(TEXT_SUFFIXES)


def encode_body(body: bytes, content_type: str) -> tuple[str, bool]:
    """Text bodies stay text; anything else is base64, flagged as function URLs flag it."""
    if is_text(content_type) or not content_type:
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def webhook_event(
    request: HttpRequest,
    request_id: str,
    now: datetime,
    joined: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The function URL event (payload format 2.0) for one request.

    Fields AWS leaves out when empty (cookies, queryStringParameters, body) are left out too,
    so code written against AWS sees exactly what it would there. `joined` is the request's
    headers already through `joined_headers` (the webhook verified them), to save a second
    pass; the event takes it over.
    """
    headers = joined_headers(request.headers) if joined is None else joined
    cookie_header = headers.pop("cookie", "")
    host = (
        headers.get("host", request.host).rsplit(":", 1)[0]
        if "]" not in request.host
        else request.host
    )
    epoch = now.timestamp()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": request.query_string,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": request.api_id,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": request_time(math.floor(epoch), now.tzinfo),
            "timeEpoch": int(epoch * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookie_header:
        event["cookies"] = [c.strip() for c in cookie_header.split(";") if c.strip()]
    if request.query_string:
        event["queryStringParameters"] = query_parameters(request.query_string)
    if request.body:
        event["body"], event["isBase64Encoded"] = encode_body(
            request.body, headers.get("content-type", "")
        )
    cloudevent = http_cloudevent(headers, request.body)
    if cloudevent:
        event["cloudevent"] = cloudevent
    return event


@functools.lru_cache(maxsize=4)
def request_time(second: int, tz: tzinfo | None) -> str:
    """`requestContext.time` of the second: formatting a time is costly and a busy webhook
    asks for the same second thousands of times."""
    return datetime.fromtimestamp(second, tz).strftime(REQUEST_TIME)


def webhook_event_id(headers: Mapping[str, str]) -> str | None:
    """The sender's delivery id, when it gives one: the idempotency key of the event."""
    for name in ("webhook-id", "x-github-delivery", "ce-id", "idempotency-key", "x-request-id"):
        value = headers.get(name)
        if value:
            return value
    return None


def http_cloudevent(headers: Mapping[str, str], body: bytes) -> dict[str, Any] | None:
    """CloudEvents over HTTP: binary mode (`ce-*` headers) or structured mode (JSON body)."""
    if "ce-specversion" in headers:
        return {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
    if headers.get("content-type", "").startswith("application/cloudevents+json"):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if isinstance(document, dict) and "specversion" in document:
            return {k: v for k, v in document.items() if k not in ("data", "data_base64")}
    return None


def amqp_cloudevent(headers: Mapping[str, Any]) -> dict[str, Any] | None:
    """CloudEvents AMQP binding: attributes in `cloudEvents:` (or `cloudEvents_`) headers."""
    attributes = {
        name[12:]: value
        for name, value in headers.items()
        if name.startswith(("cloudEvents:", "cloudEvents_"))
    }
    return attributes if "specversion" in attributes else None


def decode_body(body: bytes, content_type: str | None) -> Any:
    """JSON when it parses, else text, else base64 text (so the event stays JSON)."""
    return decoded_body(body, content_type)[0]


def decoded_body(body: bytes, content_type: str | None) -> tuple[Any, bool]:
    """The body as `decode_body` gives it, and whether that is base64 of binary bytes."""
    if content_type is None or "json" in content_type or not is_text(content_type):
        try:
            return orjson.loads(body), False
        except orjson.JSONDecodeError:
            pass
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def plain(value: Any) -> Any:
    """AMQP header values as JSON-able values (bytes, datetimes and decimals are not)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class AmqpMessage:
    """The parts of a delivered AMQP message an event is made of."""

    body: bytes
    headers: Mapping[str, Any]
    routing_key: str
    exchange: str
    message_id: str | None
    correlation_id: str | None
    content_type: str | None
    timestamp: datetime | None
    redelivered: bool


def amqp_event(message: AmqpMessage, attempt: int) -> dict[str, Any]:
    headers = plain(dict(message.headers))
    body, binary = decoded_body(message.body, message.content_type)
    event: dict[str, Any] = {
        "body": body,
        "isBase64Encoded": binary,  # as Lambda marks a binary body: base64, said so
        "headers": headers,
        "routing_key": message.routing_key,
        "exchange": message.exchange,
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
        "content_type": message.content_type,
        "timestamp": message.timestamp.isoformat() if message.timestamp else None,
        "redelivered": message.redelivered,
        "attempt": attempt,
    }
    cloudevent = amqp_cloudevent(headers)
    if cloudevent:
        event["cloudevent"] = cloudevent
    return event


def amqp_event_id(message: AmqpMessage) -> str | None:
    cloudevent = amqp_cloudevent(message.headers)
    if cloudevent and cloudevent.get("id"):
        return str(cloudevent["id"])
    return message.message_id


def function_url_response(result: Any) -> HttpResponse:
    """Map a handler's return value to HTTP exactly as Lambda function URLs do.

    A dict with `statusCode` is a response description; anything else is a 200 JSON body.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return HttpResponse(200, [("Content-Type", "application/json")], orjson.dumps(result))
    status = int(result["statusCode"])
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(c)) for c in result.get("cookies") or []]
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        data = orjson.dumps(body)
    elif result.get("isBase64Encoded"):
        data = base64.b64decode(body, validate=True)
    else:
        data = body.encode("utf-8")
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(status, headers, data)


def utcnow() -> datetime:
    return datetime.now(UTC)


class ResponseError(ValueError):
    """A handler result that cannot be turned into an HTTP response."""


def checked_response(result: Any) -> HttpResponse:
    try:
        response = function_url_response(result)
    except (TypeError, ValueError, binascii.Error, orjson.JSONEncodeError) as exc:
        raise ResponseError(f"the function's response cannot be mapped to HTTP: {exc}") from exc
    if not 100 <= response.status <= 599:
        raise ResponseError(f"the function returned an invalid statusCode {response.status}")
    return response
