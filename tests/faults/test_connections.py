"""Hostile HTTP clients: connections held open, request heads and bodies sent slowly, more
connections than there are file descriptors, HTTP/0.9. Each must cost the router a bounded,
counted amount, and never its ability to answer others.

These routers need only their HTTP server. Their RabbitMQ URL points where nothing listens and
they are waited for on /healthz, so the tests hold whatever state the broker is in.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import redis

from tests.conftest import (
    ADMIN_TOKEN,
    REDIS_URL,
    Router,
    free_port,
    logged,
    start_router,
    stop,
    unique,
)
from tests.faults.conftest import start_limited, wait_listening

GET = b"GET /healthz HTTP/1.1\r\nHost: router\r\n\r\n"


@contextmanager
def listening(nofile: int | None = None, **env: str) -> Iterator[Router]:
    namespace = unique("conn")
    nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    env = {"ROUTER_AMQP_URL": nowhere, "ROUTER_HANDLERS": "", **env}
    if nofile is None:
        process, port, log = start_router(namespace, **env)
    else:
        process, port, log = start_limited(namespace, nofile, **env)
    try:
        wait_listening(port, process, log)
        yield Router(namespace, port, process, log)
    finally:
        stop(process)
        keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(f"{namespace}:*"))
        if keys:
            redis.Redis.from_url(REDIS_URL).delete(*keys)


def port_of(router: Router) -> int:
    return int(router.url.rsplit(":", 1)[1])


def connect(router: Router) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port_of(router)), timeout=10)


def answer(sock: socket.socket) -> tuple[int, bytes]:
    """One response read off the socket: its status and body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(h.split(":", 1)[1]) for h in lines if h.lower().startswith("content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split()[1]), body


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the router closes the connection (FIN or reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def kept_alive(router: Router) -> socket.socket:
    """A connection that has had one request answered and now stays open."""
    sock = connect(router)
    sock.sendall(GET)
    assert answer(sock)[0] == 200
    return sock


def test_request_heads_must_arrive_in_time_and_idle_connections_end() -> None:
    with listening(ROUTER_HEADER_TIMEOUT_S="1", ROUTER_KEEPALIVE_TIMEOUT_S="30") as router:
        silent = connect(router)  # says nothing at all
        trickling = connect(router)  # begins a request head and never ends it
        trickling.sendall(b"GET /healthz HTTP/1.1\r\nHost: router\r\n")
        resumed = kept_alive(router)  # kept alive, then begins a head it never ends
        resumed.sendall(b"GET /healthz HTTP/1.1\r\n")
        idle = kept_alive(router)  # kept alive and quiet: the idle timeout is its limit
        for sock in (silent, trickling, resumed):
            assert closed_within(sock, 10)
        idle.sendall(GET)  # still open after the header timeout has passed several times
        assert answer(idle)[0] == 200
    with listening(ROUTER_KEEPALIVE_TIMEOUT_S="1") as router:
        assert closed_within(kept_alive(router), 10)


def test_http_09_and_other_versions_are_refused_before_any_handler() -> None:
    with listening() as router:
        for request in (
            b"GET /healthz\r\n\r\n",
            b"GET /healthz HTTP/0.9\r\n\r\n",
            b"GET /healthz HTTP/2.0\r\n\r\n",
        ):
            sock = connect(router)
            sock.sendall(request)
            status, body = answer(sock)
            assert status == 505, request
            assert "not supported" in json.loads(body)["error"]
            assert closed_within(sock, 10)
        sock = connect(router)
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert answer(sock)[0] == 200


def test_connections_past_the_cap_get_503_and_are_counted() -> None:
    with listening(ROUTER_MAX_CONNECTIONS="8", ROUTER_HEADER_TIMEOUT_S="60") as router:
        held = [kept_alive(router) for _ in range(8)]
        extra = connect(router)
        extra.sendall(GET)
        status, body = answer(extra)
        assert status == 503
        assert "too many open connections" in json.loads(body)["error"]
        held.pop().close()  # room for one: the client's below
        assert not _refused(_when_admitted(router, "/healthz"))
        assert router.metric("router_http_connections_refused_total") >= 1
        assert router.metric("router_http_connections") == 8
        reasons = router.http.get("/readyz").json()["reasons"]
        assert any("HTTP connections near the cap" in reason for reason in reasons), reasons
        assert "refused 1 new ones" in logged(router.log, "refused 1 new ones")


def test_default_cap_keeps_the_router_inside_its_file_descriptors() -> None:
    """More connections than the open-file limit allows: every one is answered (200 or 503),
    none is reset, and the router still answers once they are gone."""
    with listening(nofile=256, ROUTER_HEADER_TIMEOUT_S="60") as router:
        statuses: list[int] = []
        sockets = []
        for _ in range(300):
            sock = connect(router)
            sock.sendall(GET)
            statuses.append(answer(sock)[0])
            sockets.append(sock)
        assert set(statuses) == {200, 503}
        assert statuses.index(503) == statuses.count(200)  # refused from the cap on
        for sock in sockets:
            sock.close()
        assert _when_admitted(router, "/healthz").status_code == 200


def test_readyz_reports_file_descriptors_running_out() -> None:
    with listening(
        nofile=256, ROUTER_MAX_CONNECTIONS="1000", ROUTER_HEADER_TIMEOUT_S="60"
    ) as router:
        held: list[socket.socket] = []
        reasons: list[str] = []
        while not any("file descriptors nearly exhausted" in r for r in reasons):
            assert len(held) < 256, "no warning before the limit"
            held += [kept_alive(router) for _ in range(4)]
            reasons = router.http.get("/readyz").json()["reasons"]


def test_admin_bodies_must_arrive_in_time() -> None:
    with listening(ROUTER_BODY_TIMEOUT_S="1") as router:
        sock = connect(router)
        sock.sendall(
            b"PUT /api/v1/functions/slow HTTP/1.1\r\nHost: router\r\n"
            + f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            + b'{"handler": '
        )
        status, body = answer(sock)
        assert status == 408
        assert "not received within 1 s" in json.loads(body)["error"]


def _when_admitted(router: Router, path: str) -> httpx.Response:
    """A GET once the router has noticed the connections closed before it (until then it may
    still be at its cap and refuse this one)."""
    deadline = time.monotonic() + 10
    response = router.http.get(path)
    while _refused(response) and time.monotonic() < deadline:
        time.sleep(0.1)
        response = router.http.get(path)
    return response


def _refused(response: httpx.Response) -> bool:
    return response.status_code == 503 and "too many open connections" in response.text
