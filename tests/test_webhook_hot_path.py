"""What the sync webhook's fast path must keep: ids, event times and bodies as before, however
the request arrives, and our request id on every answer."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from router import events
from tests.conftest import Router
from tests.test_webhooks import sync_hook


def test_new_id_is_a_random_uuid4() -> None:
    ids = [events.new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 3, 12, 19, 3, 58, tzinfo=UTC),
        datetime(2026, 3, 12, 19, 3, 58, 999_999, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 7, 4, 23, 59, 59, 500_000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1969, 12, 31, 23, 59, 59, 250_000, tzinfo=timezone(timedelta(hours=-8))),
    ],
)
def test_event_time_is_formatted_as_before(now: datetime) -> None:
    http = events.HttpRequest("POST", "/", "", [("Host", "h")], b"", "10.0.0.1", "h")
    context = events.webhook_event(http, "r-1", now)["requestContext"]
    assert context["time"] == now.strftime("%d/%b/%Y:%H:%M:%S %z")
    assert context["timeEpoch"] == int(now.timestamp() * 1000)


def test_joined_headers_given_or_not_make_the_same_event() -> None:
    pairs = [("Host", "h.example"), ("X-A", "1"), ("x-a", "2"), ("Cookie", "a=1; b=2")]
    http = events.HttpRequest("POST", "/p", "q=1", pairs, b'{"a": 1}', "10.0.0.1", "h.example")
    now = datetime(2026, 3, 12, 19, 3, 58, tzinfo=UTC)
    joined = events.joined_headers(pairs)
    assert events.webhook_event(http, "r", now, joined=joined) == events.webhook_event(
        http, "r", now
    )


def _raw_post(router: Router, path: str, head_extra: str, parts: list[bytes]) -> bytes:
    """POST over a raw socket, the body sent in `parts` with pauses: it arrives after the
    handler started, so the router reads it rather than finding it buffered."""
    host, port = router.http.base_url.host, router.http.base_url.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"{head_extra}Connection: close\r\n\r\n".encode()
        )
        for part in parts:
            time.sleep(0.1)
            sock.sendall(part)
        return _answer(sock)


def _answer(sock: socket.socket) -> bytes:
    """What came back, up to the close; or up to a pause, for an answer sent before the
    body was (the router may keep reading the refused body before it closes)."""
    chunks: list[bytes] = []
    sock.settimeout(2)
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        assert chunks, "no answer"
    return b"".join(chunks)


def test_a_body_arriving_late_is_read_whole(router: Router) -> None:
    name = sync_hook(router, "testfns:respond")
    body = b'{"statusCode": 201, "body": "late"}'
    answer = _raw_post(
        router, f"/hooks/{name}", f"Content-Length: {len(body)}\r\n", [body[:9], body[9:]]
    )
    assert answer.startswith(b"HTTP/1.1 201")
    assert answer.endswith(b"late")


def test_a_chunked_body_arriving_late_is_read_whole(router: Router) -> None:
    name = sync_hook(router, "testfns:respond")
    body = b'{"statusCode": 202, "body": "chunked"}'
    parts = [
        b"%x\r\n%s\r\n" % (len(body[:5]), body[:5]),
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(body[5:]), body[5:]),
    ]
    answer = _raw_post(router, f"/hooks/{name}", "Transfer-Encoding: chunked\r\n", parts)
    assert answer.startswith(b"HTTP/1.1 202")
    assert answer.endswith(b"chunked")


@pytest.mark.parametrize(
    ("head", "parts"),
    [
        ("Content-Length: 40\r\n", []),  # refused on its declared size, before any byte
        ("Content-Length: 40\r\n", [b"x" * 20, b"x" * 20]),
        ("Transfer-Encoding: chunked\r\n", [b"14\r\n" + b"x" * 20 + b"\r\n"] * 2 + [b"0\r\n\r\n"]),
    ],
)
def test_a_late_body_over_the_limit_is_refused(
    router: Router, head: str, parts: list[bytes]
) -> None:
    name = sync_hook(router, "testfns:respond", max_body_bytes=30)
    answer = _raw_post(router, f"/hooks/{name}", head, parts)
    assert answer.startswith(b"HTTP/1.1 413")


def test_our_request_id_replaces_the_functions(router: Router) -> None:
    name = sync_hook(router, "testfns:respond")
    response = router.http.post(
        f"/hooks/{name}",
        json={"statusCode": 200, "headers": {"X-Request-Id": "theirs", "X-Other": "kept"}},
    )
    assert response.status_code == 200
    assert response.headers.get_list("X-Request-Id") != ["theirs"]
    assert len(response.headers.get_list("X-Request-Id")) == 1
    uuid.UUID(response.headers["X-Request-Id"])
    assert response.headers["X-Other"] == "kept"
