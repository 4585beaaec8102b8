"""Table tests for the pure parts: settings, event shapes, response mapping, retry decisions
and the message envelope (AMQP routing: tests/test_routing.py)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from router import events, retry
from router.envelope import Envelope
from router.settings import Settings, SettingsError
from router.specs import RetryPolicy


@pytest.mark.parametrize(
    ("environ", "overrides", "expected"),
    [
        (
            {},
            {},
            {
                "port": 8080,
                "namespace": "router",
                "handlers": ("handlers",),
                "amqp_url": "amqp://guest:guest@localhost:5672/",
                "redis_url": "redis://localhost:6379/0",
                "host": "127.0.0.1",
            },
        ),
        (
            {"ROUTER_PORT": "9000", "ROUTER_NAMESPACE": "team-a"},
            {},
            {"port": 9000, "namespace": "team-a"},
        ),
        ({"ROUTER_PORT": "9000"}, {"port": "9100"}, {"port": 9100}),
        ({"ROUTER_HANDLERS": "a.b, c"}, {}, {"handlers": ("a.b", "c")}),
        (
            {"ROUTER_ADMIN_TOKEN": "s3cret-long-enough"},
            {"admin_token": None},
            {"admin_token": "s3cret-long-enough"},
        ),
        ({"ROUTER_REGISTRY_POLL_S": "0.25"}, {}, {"registry_poll_s": 0.25}),
    ],
)
def test_settings_from_env(
    environ: dict[str, str], overrides: dict[str, Any], expected: dict[str, Any]
) -> None:
    settings = Settings.from_env(environ, **overrides)
    for key, value in expected.items():
        assert getattr(settings, key) == value


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ROUTER_PORT": "http"}, "ROUTER_PORT must be a number"),
        ({"ROUTER_PORT": "70000"}, "ROUTER_PORT must be 1-65535"),
        ({"ROUTER_NAMESPACE": "a b"}, "ROUTER_NAMESPACE"),
        ({"ROUTER_AMQP_URL": "localhost:5672"}, "ROUTER_AMQP_URL must be a amqp:// URL"),
        ({"ROUTER_REDIS_URL": "http://x"}, "ROUTER_REDIS_URL"),
        ({"ROUTER_PREFETCH_MULTIPLIER": "0"}, "ROUTER_PREFETCH_MULTIPLIER must be 1 or more"),
        ({"ROUTER_ADMIN_TOKEN": "change-me"}, "ROUTER_ADMIN_TOKEN must be at least 16"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


NOW = datetime(2026, 3, 12, 19, 3, 58, tzinfo=UTC)


def http(**changes: Any) -> events.HttpRequest:
    fields: dict[str, Any] = {
        "method": "POST",
        "path": "/",
        "query_string": "",
        "headers": [("Host", "h.example")],
        "body": b"",
        "source_ip": "10.0.0.1",
        "host": "h.example",
    }
    return events.HttpRequest(**{**fields, **changes})


def test_webhook_event_leaves_out_what_aws_leaves_out() -> None:
    event = events.webhook_event(http(method="GET"), "r-1", NOW)
    assert "body" not in event
    assert "cookies" not in event
    assert "queryStringParameters" not in event
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["time"] == "12/Mar/2026:19:03:58 +0000"
    assert event["requestContext"]["timeEpoch"] == 1773342238000
    assert event["requestContext"]["domainPrefix"] == "h"


@pytest.mark.parametrize(
    ("content_type", "body", "text", "encoded"),
    [
        ("application/json", b'{"a":1}', '{"a":1}', False),
        ("text/plain; charset=utf-8", "é".encode(), "é", False),
        ("application/x-www-form-urlencoded", b"a=1", "a=1", False),
        ("application/cloudevents+json", b"{}", "{}", False),
        ("application/octet-stream", b"\x00\xff", base64.b64encode(b"\x00\xff").decode(), True),
        ("image/png", b"PNG", base64.b64encode(b"PNG").decode(), True),
        ("text/plain", b"\xff\xfe", base64.b64encode(b"\xff\xfe").decode(), True),
    ],
)
def test_body_encoding(content_type: str, body: bytes, text: str, encoded: bool) -> None:
    assert events.encode_body(body, content_type) == (text, encoded)


@pytest.mark.parametrize(
    ("result", "status", "headers", "body"),
    [
        ({"ok": True}, 200, [("Content-Type", "application/json")], b'{"ok":true}'),
        ("text", 200, [("Content-Type", "application/json")], b'"text"'),
        (None, 200, [("Content-Type", "application/json")], b"null"),
        ({"statusCode": 204}, 204, [("Content-Type", "application/json")], b""),
        (
            {"statusCode": 201, "body": "hi", "headers": {"Content-Type": "text/plain"}},
            201,
            [("Content-Type", "text/plain")],
            b"hi",
        ),
        (
            {"statusCode": 200, "body": {"a": 1}},
            200,
            [("Content-Type", "application/json")],
            b'{"a":1}',
        ),
        (
            {
                "statusCode": 200,
                "body": "AAE=",
                "isBase64Encoded": True,
                "headers": {"content-type": "x/y"},
            },
            200,
            [("content-type", "x/y")],
            b"\x00\x01",
        ),
        (
            {"statusCode": 302, "headers": {"Location": "/x"}, "cookies": ["a=1", "b=2"]},
            302,
            [
                ("Location", "/x"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("Content-Type", "application/json"),
            ],
            b"",
        ),
    ],
)
def test_function_url_response(
    result: Any, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    response = events.checked_response(result)
    assert (response.status, response.headers, response.body) == (status, headers, body)


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": 99},
        {"statusCode": "x"},
        {"statusCode": 200, "body": "!!", "isBase64Encoded": True},
    ],
)
def test_unmappable_response(result: Any) -> None:
    with pytest.raises(events.ResponseError):
        events.checked_response(result)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"webhook-id": "msg_1", "x-github-delivery": "g"}, "msg_1"),
        ({"x-github-delivery": "g"}, "g"),
        ({"ce-id": "c"}, "c"),
        ({}, None),
    ],
)
def test_webhook_event_id(headers: dict[str, str], expected: str | None) -> None:
    assert events.webhook_event_id(headers) == expected


def test_http_cloudevents_binary_and_structured() -> None:
    binary = events.http_cloudevent({"ce-specversion": "1.0", "ce-id": "1", "x": "y"}, b"")
    assert binary == {"specversion": "1.0", "id": "1"}
    structured = events.http_cloudevent(
        {"content-type": "application/cloudevents+json"},
        b'{"specversion": "1.0", "id": "2", "type": "t", "data": {"a": 1}}',
    )
    assert structured == {"specversion": "1.0", "id": "2", "type": "t"}
    assert events.http_cloudevent({"content-type": "application/json"}, b"{}") is None


POLICY = RetryPolicy(max_attempts=3, max_event_age_s=60)


@pytest.mark.parametrize(
    ("status", "attempt", "age_s", "expected"),
    [
        ("succeeded", 1, 0, "ack"),
        ("succeeded", 3, 999, "ack"),
        ("failed", 1, 0, "retry"),
        ("timed_out", 2, 10, "retry"),
        ("failed", 3, 0, "dead_letter"),
        ("failed", 1, 60, "dead_letter"),
        ("timed_out", 4, 0, "dead_letter"),
    ],
)
def test_retry_decision(status: str, attempt: int, age_s: float, expected: str) -> None:
    assert retry.decide(status, attempt, age_s, POLICY) == expected


def test_envelope_round_trip() -> None:
    envelope = Envelope("inv-1", "evt-1", "hook", 1700000000.25)
    again = Envelope.from_headers(envelope.headers())
    assert again == envelope
    retried = envelope.next_attempt({"attempt": 1, "type": "ValueError"})
    parsed = Envelope.from_headers(retried.headers())
    assert parsed is not None
    assert parsed.attempt == 2
    assert parsed.errors == ({"attempt": 1, "type": "ValueError"},)
    assert Envelope.from_headers({"other": "header"}) is None
