"""JSON answers: every error the router answers is JSON naming its cause."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def json_error(
    status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    return json_response({"error": message, **extra}, status=status, headers=headers)


def unavailable(message: str, retry_after_s: int = 5) -> web.Response:
    return json_error(503, message, headers={"Retry-After": str(retry_after_s)})


class HttpError(Exception):
    """Raised by handlers; `guards` turns it into a JSON error response."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra

    def response(self) -> web.Response:
        return json_error(self.status, str(self), **self.extra)
