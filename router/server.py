"""The HTTP listener: the port bound before anything starts, and connections that are capped,
timed out and held to HTTP/1.x.

None of this is aiohttp middleware (see `router.guards` for why): the checks live in the
connection's protocol, where they cost a comparison or two per request.

- The port is bound (and listened on) before the app starts, so a router that cannot listen
  exits at once, before it has connected, consumed or run anything.
- A new connection must send a complete request head within ROUTER_HEADER_TIMEOUT_S, and so
  must a kept-alive one once the next request has begun; an idle kept-alive connection is closed
  after ROUTER_KEEPALIVE_TIMEOUT_S (aiohttp's own timer). A request on a kept-alive connection
  costs no timer: one is armed only when a head arrives in pieces.
- Past the cap (`router.connections`) a connection is answered 503 and closed.
- Requests that are not HTTP/1.0 or 1.1 (HTTP/0.9's bare `GET /`, or a version this server
  does not speak) get a 505 before any handler runs.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from http import HTTPStatus
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from router.connections import Connections
from router.jsonhttp import json_error
from router.logformat import AccessLog
from router.settings import Settings

log = logging.getLogger("router.server")
BACKLOG = 1024
VERSIONS = (HttpVersion11, HttpVersion10)
REFUSAL_LINGER_S = 1.0  # a refused connection that sends nothing is closed after this
UNSUPPORTED = "HTTP/{}.{} is not supported: send HTTP/1.1 (or 1.0) requests"


class BindError(Exception):
    """The port could not be listened on; the message says why in an operator's words."""


def bind(
    host: str, port: int, reuse_port: bool = False, listen: bool = True
) -> list[socket.socket]:
    """Listening sockets on every address `host` resolves to, as asyncio would make them.
    `reuse_port`: beside the sockets of sibling workers (SO_REUSEPORT), the kernel spreading
    new connections over them. `listen=False`: bound only, so that no connection is queued to
    them until the server starts (asyncio listens then)."""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(f"cannot resolve ROUTER_HOST {host!r}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(addresses):
            sockets.append(_listen(family, kind, proto, address, port, reuse_port, listen))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _listen(
    family: int, kind: int, proto: int, address: Any, port: int, reuse_port: bool, listen: bool
) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts within TIME_WAIT
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        if listen:
            sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        host = address[0]
        if exc.errno == errno.EADDRINUSE:
            raise BindError(f"port {port} is in use (on {host})") from None
        if exc.errno == errno.EACCES:
            raise BindError(f"no permission to listen on port {port} (on {host})") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise BindError(f"{host} is not an address of this host (ROUTER_HOST)") from None
        raise BindError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    return sock


class Connection(RequestHandler):
    """aiohttp's protocol with the router's limits: the place it holds under the cap, a header
    timeout beside aiohttp's idle one, HTTP/1.x only, and errors as JSON."""

    __slots__ = ("_connections", "_head_count", "_head_timer", "_header_timeout_s")

    def __init__(
        self, manager: web.Server, connections: Connections, header_timeout_s: float, **kw: Any
    ) -> None:
        super().__init__(manager, **kw)
        self._connections: Connections | None = connections
        self._header_timeout_s = header_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_count = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._expect_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._connections is not None:
            self._connections.release()
            self._connections = None
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        super().data_received(data)
        parsed = self._request_count - count
        if parsed == 1 and getattr(self._messages[-1][0], "version", None) in VERSIONS:
            return  # the usual: one HTTP/1.x request, checked at the cost of a lookup
        if parsed:
            self._refuse_other_versions(parsed)
        elif not self._request_in_progress and self._head_count != count:
            self._expect_head()  # the start of the next request head: the rest is due soon

    def _expect_head(self) -> None:
        """The request head begun now (on a new connection: the first one) must be complete
        within the header timeout. Armed once per request, so trickling bytes cannot extend it."""
        self._head_count = count = self._request_count
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self._loop.call_later(self._header_timeout_s, self._head_due, count)

    def _head_due(self, count: int) -> None:
        if self._request_count == count and not self._request_in_progress:
            log.debug("closed a connection whose request head did not arrive in time")
            self.force_close()

    def _refuse_other_versions(self, parsed: int) -> None:
        """Turn newly parsed requests of another HTTP version into 505s: aiohttp answers its
        parse errors this way, so no handler runs and the connection closes after it."""
        messages = self._messages
        for i in range(len(messages) - parsed, len(messages)):
            message = messages[i][0]
            if not isinstance(message, _ErrInfo) and message.version not in VERSIONS:
                text = UNSUPPORTED.format(*message.version)
                error = _ErrInfo(status=505, exc=ValueError(text), message=text)
                messages[i] = (error, EMPTY_PAYLOAD)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """What aiohttp refuses before routing (a malformed request, another HTTP version)
        is answered as JSON like every other error, and logged quietly: it is the client's."""
        if status >= 500 and status != 505:
            return super().handle_error(request, status, exc, message)
        log.debug("refused a request from %s: %s", request.remote, message)
        response = json_error(status, message or HTTPStatus(status).phrase)
        response.force_close()
        return response


class Refusal(asyncio.Protocol):
    """A connection over the cap: answered 503 at once and closed as soon as the request has
    been read (read first, so the close is a FIN the client sees after the answer, not a
    reset), or after REFUSAL_LINGER_S if it sends nothing."""

    BODY = orjson.dumps({"error": "too many open connections; retry shortly"})
    ANSWER = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )

    def __init__(self) -> None:
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not its subclasses
        transport.write(self.ANSWER)
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_S, transport.close)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


class HttpServer:
    """Accepts on the bound sockets and makes each connection's protocol."""

    def __init__(self, server: web.Server, connections: Connections, settings: Settings) -> None:
        self.connections = connections
        self._server = server
        self._header_timeout_s = settings.header_timeout_s
        self._listeners: list[asyncio.AbstractServer] = []
        self._keepalive_timeout_s = settings.keepalive_timeout_s
        self._loop = asyncio.get_running_loop()

    def __call__(self) -> asyncio.Protocol:
        if not self.connections.admit():
            return Refusal()
        return Connection(
            self._server,
            self.connections,
            self._header_timeout_s,
            loop=self._loop,
            keepalive_timeout=self._keepalive_timeout_s,
            access_log_class=AccessLog,
            # Bodies as sent: signatures are checked over those bytes (router.encodings decodes).
            auto_decompress=False,
        )

    async def start(self, sockets: list[socket.socket]) -> None:
        for sock in sockets:
            listener = await self._loop.create_server(self, sock=sock, backlog=BACKLOG)
            self._listeners.append(listener)

    def stop_listening(self) -> None:
        for listener in self._listeners:
            listener.close()
