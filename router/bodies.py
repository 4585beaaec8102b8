"""Reading request bodies: bounded in size and in time, and decoded only after whatever
checks the bytes as sent."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import hdrs, web

from router import encodings
from router.jsonhttp import HttpError


class BodyTooLarge(Exception):
    pass


def received_body(request: web.BaseRequest, limit: int) -> bytes | None:
    """The body when all of it has arrived already, else None (more is on the way).

    A small request usually comes in one segment, parsed before its handler starts: taking
    the buffer then needs no await and no timeout armed, which is most of what reading costs.
    Refuses more than `limit` bytes as `read_limited` does.
    """
    content = request.content
    if not content.is_eof():
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge
        return None
    body = content.read_nowait()
    if len(body) > limit:
        raise BodyTooLarge
    return body


async def read_limited(request: web.BaseRequest, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without reading past it (chunked too)."""
    received = received_body(request, limit)
    if received is not None:
        return received
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def decoded(request: web.Request, body: bytes, limit: int) -> bytes:
    """The body with its `Content-Encoding` undone (the server leaves bodies as sent, so that
    signatures are checked over those bytes); raises `encodings.EncodingError`."""
    if hdrs.CONTENT_ENCODING not in request.headers:
        return body  # the common case, checked first: no list built, nothing copied
    content_encoding = encodings.header(request.headers.getall(hdrs.CONTENT_ENCODING))
    return encodings.decode(body, content_encoding, limit)


async def read_json(request: web.Request, limit: int, timeout_s: float, empty: Any = None) -> Any:
    """A JSON request body; raises web.HTTPException-compatible JSON errors. An empty body is
    `empty` when one is given (Invoke's is the event `{}`, as Lambda's), else refused. A body
    that has not all arrived within `timeout_s` (ROUTER_BODY_TIMEOUT_S) gets 408, as a webhook's
    does."""
    try:
        raw = decoded(request, await read_timed(request, limit, timeout_s), limit)
    except BodyTooLarge:
        raise HttpError(413, f"request body is larger than {limit} bytes") from None
    except encodings.EncodingError as exc:
        raise HttpError(exc.status, str(exc), headers=exc.headers) from None
    if not raw.strip():
        if empty is not None:
            return empty
        raise HttpError(400, "request body is empty; a JSON document is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"request body is not valid JSON: {exc}") from None


async def read_timed(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """`read_limited` within `timeout_s` (408 past it)."""
    try:
        raw = received_body(request, limit)  # all there already: no timer to arm
        if raw is None:
            async with asyncio.timeout(timeout_s):
                raw = await read_limited(request, limit)
    except TimeoutError:
        raise HttpError(408, f"request body not received within {timeout_s:g} s") from None
    return raw
