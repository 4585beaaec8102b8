"""The Lambda Runtime API (2018-06-01), served to one execution environment on loopback.

Each environment gets an endpoint of its own (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>`), so AWS's
runtime clients and custom `bootstrap` files work unmodified; the endpoint hands out only that
environment's invocations and takes answers only for the one in flight. When the environment
runs as a uid of its own, connections from any other user's process are refused: loopback is
not a credential.

Status codes and error bodies follow AWS's documentation: 202 `{"status": "OK"}` for an answer
taken, 400 for a request id that is not the one in flight, 403 for a connection that is not the
environment's or an init error after init, 413 for a response over the payload limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import weakref
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from router.bodies import BodyTooLarge, read_limited

PREFIX = "/2018-06-01/runtime/"
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NO_COOKIE = 0xFFFFFFFF
ALL_STATES = 0xFFFFFFFF
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # Lambda's synchronous response limit
MAX_ERROR_BYTES = 1024 * 1024


@dataclass
class Invocation:
    request_id: str
    body: bytes  # the event, as JSON
    deadline_ms: int
    function_arn: str
    trace_id: str
    answer: asyncio.Future[Answer]
    client_context: str | None = None
    identity: str | None = None


@dataclass(frozen=True)
class Answer:
    """What the runtime posted: a response body, or an error document and its type."""

    body: bytes
    error_type: str | None = None  # None: a response

    @property
    def failed(self) -> bool:
        return self.error_type is not None


class InitFailed(Exception):
    """The runtime reported an init error (POST /runtime/init/error)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.error_type)
        self.answer = answer


class _NoAccessLog(AbstractAccessLogger):
    def log(self, request: Any, response: Any, time: float) -> None:
        return None

    @property
    def enabled(self) -> bool:
        return False


class RuntimeApi:
    def __init__(self, uid: int | None) -> None:
        self._uid = uid  # the environment's own uid, when it has one
        self._verified: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self._server: asyncio.base_events.Server | None = None
        self._http: web.Server | None = None
        self._port = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._current: Invocation | None = None
        self._queued: Invocation | None = None
        self._waiting: asyncio.Future[None] | None = None
        self._stopping = False

    async def start(self) -> str:
        """Listen on a free loopback port; returns `host:port` for AWS_LAMBDA_RUNTIME_API."""
        self._http = web.Server(self._handle, access_log_class=_NoAccessLog)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._http, "127.0.0.1", 0, backlog=16)
        self._port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{self._port}"

    def stop(self) -> None:
        """The environment is ending: a runtime waiting for its next event is told so with a
        500, which AWS's clients take as "exit now"."""
        self._stopping = True
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)

    def submit(self, invocation: Invocation) -> None:
        """Hand the next invocation to the runtime (now, or at its next GET /next)."""
        self._queued = invocation
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._http is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http.shutdown(0.1), 1.0)
        if not self.ready.done():
            self.ready.cancel()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if not self._allowed(request):
            return _error(403, "Forbidden", "this endpoint serves one execution environment")
        path = request.path
        if not path.startswith(PREFIX):
            return _error(404, "NotFound", f"no such path {path!r}")
        action = path[len(PREFIX) :]
        if action == "invocation/next" and request.method == "GET":
            return await self._next()
        if action == "init/error" and request.method == "POST":
            return await self._init_error(request)
        kind, _, rest = action.partition("/")
        request_id, _, verb = rest.rpartition("/")
        if kind == "invocation" and verb in ("response", "error") and request.method == "POST":
            return await self._answer(request, request_id, verb)
        return _error(404, "NotFound", f"no such path {path!r}")

    async def _next(self) -> web.StreamResponse:
        if not self.ready.done():
            self.ready.set_result(None)  # the runtime is initialised
        current = self._current
        if current is not None and not current.answer.done():
            message = "the runtime asked for the next event without answering this one"
            current.answer.set_result(_runtime_error("Runtime.NoResponse", message))
        self._current = None
        while self._queued is None:
            if self._stopping:
                return _error(500, "Runtime.Shutdown", "the execution environment is stopping")
            self._waiting = asyncio.get_running_loop().create_future()
            await self._waiting
        invocation, self._queued = self._queued, None
        if invocation.answer.done():  # given up on (timed out) before the runtime asked
            return await self._next()
        self._current = invocation
        return web.Response(body=invocation.body, headers=_event_headers(invocation))

    async def _answer(
        self, request: web.BaseRequest, request_id: str, verb: str
    ) -> web.StreamResponse:
        current = self._current
        if current is None or current.request_id != request_id or current.answer.done():
            return _error(400, "InvalidRequestID", f"no invocation {request_id!r} in flight")
        limit = MAX_RESPONSE_BYTES if verb == "response" else MAX_ERROR_BYTES
        body = await _read(request, limit)
        if body is None:
            message = (
                f"Response payload size exceeded maximum allowed payload size ({limit} bytes)."
            )
            current.answer.set_result(_runtime_error("Function.ResponseSizeTooLarge", message))
            return _error(413, "RequestEntityTooLarge", message)
        if verb == "response":
            current.answer.set_result(Answer(body))
        else:
            current.answer.set_result(Answer(body, _error_type(request, body)))
        return _accepted()

    async def _init_error(self, request: web.BaseRequest) -> web.StreamResponse:
        if self.ready.done():
            return _error(403, "InvalidStateTransition", "init/error after init")
        body = await _read(request, MAX_ERROR_BYTES) or b""
        self.ready.set_exception(InitFailed(Answer(body, _error_type(request, body))))
        return _accepted()

    def _allowed(self, request: web.BaseRequest) -> bool:
        """With a uid of its own, only the environment's processes may connect."""
        if self._uid is None:
            return True
        transport = request.transport
        if transport is None:
            return False
        if transport in self._verified:
            return True
        peer = transport.get_extra_info("peername")
        if not peer or socket_owner(peer[1], self._port) != self._uid:
            return False
        self._verified.add(transport)
        return True


def socket_owner(local_port: int, remote_port: int) -> int | None:
    """The uid owning the loopback TCP socket `127.0.0.1:local_port -> :remote_port`.

    Asked of the kernel with one sock_diag request for exactly that socket (a hash lookup,
    about 20 us); reading /proc/net/tcp instead costs milliseconds on a busy host, on the
    event loop, for every connection a runtime opens.
    """
    loopback = socket.inet_aton("127.0.0.1") + bytes(12)
    sockid = (
        struct.pack(">HH", local_port, remote_port)
        + loopback
        + loopback
        + struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
    )
    request = struct.pack("=BBBxI", socket.AF_INET, socket.IPPROTO_TCP, 0, ALL_STATES) + sockid
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(1.0)
            diag.send(header + request)
            answer = diag.recv(4096)
    except OSError:
        return None
    if len(answer) < 16 + 72 or struct.unpack_from("=H", answer, 4)[0] != SOCK_DIAG_BY_FAMILY:
        return None  # an error message: no such socket
    uid: int = struct.unpack_from("=I", answer, 16 + 64)[0]  # inet_diag_msg.idiag_uid
    return uid


async def _read(request: web.BaseRequest, limit: int) -> bytes | None:
    """The body, or None if it is over `limit` (without reading past it)."""
    try:
        return await read_limited(request, limit)
    except BodyTooLarge:
        return None


def _error_type(request: web.BaseRequest, body: bytes) -> str:
    given = request.headers.get("Lambda-Runtime-Function-Error-Type")
    if given:
        return given[:200]
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
        document = orjson.loads(body)
        if isinstance(document, dict) and isinstance(document.get("errorType"), str):
            return str(document["errorType"])[:200]
    return "Runtime.Unknown"


def _runtime_error(kind: str, message: str) -> Answer:
    return Answer(orjson.dumps({"errorType": kind, "errorMessage": message}), kind)


def _event_headers(invocation: Invocation) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
        "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
        "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
        "Lambda-Runtime-Trace-Id": invocation.trace_id,
    }
    if invocation.client_context:
        headers["Lambda-Runtime-Client-Context"] = invocation.client_context
    if invocation.identity:
        headers["Lambda-Runtime-Cognito-Identity"] = invocation.identity
    return headers


def _accepted() -> web.Response:
    return web.Response(status=202, body=b'{"status":"OK"}', content_type="application/json")


def _error(status: int, kind: str, message: str) -> web.Response:
    body = orjson.dumps({"errorType": kind, "errorMessage": message})
    return web.Response(status=status, body=body, content_type="application/json")
