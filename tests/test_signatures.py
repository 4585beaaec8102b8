"""Webhook security end to end: a signature matrix per scheme, signed with each scheme's own
library where one exists (standardwebhooks, stripe, slack_sdk), replay protection, body limits,
rate limits; plus property tests of the header parsers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook

from router import signatures
from tests.conftest import Router, unique

OLD, NEW, WRONG = "old-secret-1", "new-secret-2", "not-the-secret"
WH_OLD = "whsec_" + base64.b64encode(b"old standard secret").decode()
WH_NEW = "whsec_" + base64.b64encode(b"new standard secret").decode()
WH_WRONG = "whsec_" + base64.b64encode(b"someone else").decode()

Signer = Callable[[str, bytes, int, str], dict[str, str]]


def sign_standard(secret: str, body: bytes, at: int, delivery: str) -> dict[str, str]:
    stamp = datetime.fromtimestamp(at, tz=UTC)
    signature = Webhook(secret).sign(delivery, stamp, body.decode())
    return {"webhook-id": delivery, "webhook-timestamp": str(at), "webhook-signature": signature}


def sign_github(secret: str, body: bytes, at: int, delivery: str) -> dict[str, str]:
    # GitHub publishes no Python library; this is its documented HMAC-SHA256 over the body.
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": delivery}


def sign_stripe(secret: str, body: bytes, at: int, delivery: str) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, at)
    return {"Stripe-Signature": header}


def sign_slack(secret: str, body: bytes, at: int, delivery: str) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(at), body=body)
    assert signature is not None
    return {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(at)}


def sign_hmac(secret: str, body: bytes, at: int, delivery: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha512).digest()
    return {
        "X-Signature": "v=" + base64.b64encode(digest).decode(),
        "X-Timestamp": str(at),
        "X-Delivery": delivery,
    }


HMAC_SETTINGS = {
    "header": "X-Signature",
    "algorithm": "sha512",
    "encoding": "base64",
    "prefix": "v=",
    "timestamp_header": "X-Timestamp",
    "id_header": "X-Delivery",
}
SCHEMES: dict[str, tuple[Signer, str, str, str, dict[str, Any], bool]] = {
    # scheme: signer, old secret, new secret, wrong secret, extra settings, timestamped
    "standard-webhooks": (sign_standard, WH_OLD, WH_NEW, WH_WRONG, {}, True),
    "github": (sign_github, OLD, NEW, WRONG, {}, False),
    "stripe": (sign_stripe, OLD, NEW, WRONG, {}, True),
    "slack": (sign_slack, OLD, NEW, WRONG, {}, True),
    "hmac": (sign_hmac, OLD, NEW, WRONG, HMAC_SETTINGS, True),
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_signature_matrix(router: Router, scheme: str) -> None:
    sign, old, new, wrong, extra, timestamped = SCHEMES[scheme]
    function, trigger = unique("sig"), unique("sig")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(
        trigger,
        function=function,
        type="webhook",
        verify={"scheme": scheme, "secrets": [old, new], **extra},
    )
    body = json.dumps({"order": 1, "note": "tea"}).encode()
    now = int(time.time())

    def post(payload: bytes, headers: dict[str, str]) -> httpx.Response:
        return router.http.post(
            f"/hooks/{trigger}",
            content=payload,
            headers={"Content-Type": "application/json", **headers},
        )

    first = sign(new, body, now, unique("d"))
    # Another delivery: the same bytes signed again are the same delivery (tests/test_replays.py).
    other = json.dumps({"order": 2, "note": "tea"}).encode()
    rotated = sign(old, other, now, unique("d"))
    cases: list[tuple[str, int, bytes, dict[str, str]]] = [
        ("valid, new secret", 200, body, first),
        ("valid, old secret during rotation", 200, other, rotated),
        ("wrong secret", 401, body, sign(wrong, body, now, unique("d"))),
        ("one byte changed", 401, body.replace(b"tea", b"tee"), sign(new, body, now, unique("d"))),
        (
            "re-serialised",
            401,
            json.dumps(json.loads(body), indent=1).encode(),
            sign(new, body, now, unique("d")),
        ),
        ("missing headers", 400, body, {}),
        ("replay", 200, body, first),
    ]
    if timestamped:
        cases += [
            ("stale", 401, body, sign(new, body, now - 301, unique("d"))),
            ("future", 401, body, sign(new, body, now + 301, unique("d"))),
        ]
    answers = {name: post(payload, headers) for name, _, payload, headers in cases}
    for name, status, _, _ in cases:
        assert answers[name].status_code == status, (scheme, name, answers[name].text)
    for name in ("wrong secret", "one byte changed", "missing headers"):
        assert set(answers[name].json()) == {"error"}  # nothing about which part failed
    assert answers["replay"].json() == {"duplicate": True}
    runs = router.ledger(function)
    assert len(runs) == 2, f"{scheme}: only the two valid, fresh, first deliveries run"
    expected = {
        "invalid_signature": 3,
        "stale_timestamp": 2 if timestamped else 0,
        "missing_header": 1,
        "replay": 1,
    }
    for reason, count in expected.items():
        seen = router.metric("router_webhook_rejections_total", trigger=trigger, reason=reason)
        assert seen == count, (scheme, reason)


def test_secrets_are_write_only(router: Router) -> None:
    function, trigger = unique("sec"), unique("sec")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(
        trigger,
        function=function,
        type="webhook",
        verify={"scheme": "github", "secrets": [OLD, NEW]},
    )
    shown = router.http.get(f"/api/v1/triggers/{trigger}").json()
    assert shown["verify"]["secrets"] == ["<redacted>", "<redacted>"]
    assert OLD not in json.dumps(router.http.get("/api/v1/triggers").json())
    router.http.put(f"/api/v1/triggers/{trigger}", json=shown)  # GET, PUT back unchanged
    body = b'{"a": 1}'
    response = router.http.post(
        f"/hooks/{trigger}", content=body, headers=sign_github(OLD, body, 0, unique("d"))
    )
    assert response.status_code == 200, "the stored secrets were kept"


@pytest.mark.parametrize(
    ("verify", "field"),
    [
        ({"scheme": "github"}, "verify"),
        ({"scheme": "none", "secrets": ["x"]}, "verify"),
        ({"scheme": "standard-webhooks", "secrets": ["plain"]}, "verify"),
        ({"scheme": "hmac", "secrets": ["x"]}, "verify"),
        ({"scheme": "rot13"}, "verify.scheme"),
    ],
)
def test_invalid_verify_settings(router: Router, verify: dict[str, Any], field: str) -> None:
    function = unique("v")
    router.put_function(function, handler="testfns:record", isolation="thread")
    response = router.http.put(
        f"/api/v1/triggers/{unique('v')}",
        json={"function": function, "type": "webhook", "verify": verify},
    )
    assert response.status_code == 400
    assert response.json()["field"].startswith(field)


def test_webhook_triggers_must_choose_a_scheme(router: Router) -> None:
    function = unique("v")
    router.put_function(function, handler="testfns:record", isolation="thread")
    response = router.http.put(
        f"/api/v1/triggers/{unique('v')}", json={"function": function, "type": "webhook"}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "verify"


def test_body_limits_plain_and_chunked(router: Router) -> None:
    function, trigger = unique("lim"), unique("lim")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(trigger, function=function, type="webhook", max_body_bytes=1024)
    assert router.http.post(f"/hooks/{trigger}", content=b"x" * 1024).status_code == 200
    assert router.http.post(f"/hooks/{trigger}", content=b"x" * 1025).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"y" * 100

    chunked = router.http.post(f"/hooks/{trigger}", content=chunks())
    assert chunked.status_code == 413
    assert len(router.ledger(function)) == 1


def test_rate_limit_is_shared_and_answers_429(router: Router) -> None:
    function, trigger = unique("rl"), unique("rl")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(
        trigger, function=function, type="webhook", rate_limit={"per_second": 2, "burst": 5}
    )
    answers = [router.http.post(f"/hooks/{trigger}", json={}) for _ in range(12)]
    statuses = [a.status_code for a in answers]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert router.metric(
        "router_webhook_rejections_total", trigger=trigger, reason="rate_limited"
    ) == statuses.count(429)


def test_unsigned_flood_never_reaches_rabbitmq(router: Router) -> None:
    function, trigger = unique("flood"), unique("flood")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(
        trigger,
        function=function,
        type="webhook",
        mode="async",
        verify={"scheme": "github", "secrets": [NEW]},
    )
    statuses = {
        router.http.post(
            f"/hooks/{trigger}", json={"n": n}, headers={"X-Hub-Signature-256": "sha256=00"}
        ).status_code
        for n in range(50)
    }
    assert statuses == {401}
    assert router.metric("router_async_events_received_total", function=function) == 0
    assert router.ledger(function) == []


@given(st.text())
def test_standard_signature_parser_never_raises(header: str) -> None:
    for value in signatures.parse_standard_signatures(header):
        assert isinstance(value, bytes)


@given(st.lists(st.binary(min_size=1, max_size=64), max_size=5))
def test_standard_signature_parser_round_trip(values: list[bytes]) -> None:
    header = " ".join(f"v1,{base64.b64encode(v).decode()}" for v in values)
    assert signatures.parse_standard_signatures(header + " v2,ignored") == values


@given(st.text())
def test_stripe_header_parser_never_raises(header: str) -> None:
    timestamp, found = signatures.parse_stripe_header(header)
    assert timestamp is None or isinstance(timestamp, str)
    assert all(isinstance(s, str) for s in found)


@given(
    st.integers(min_value=0, max_value=2**40),
    st.lists(st.text(alphabet="0123456789abcdef", min_size=1, max_size=64), min_size=1, max_size=4),
)
def test_stripe_header_round_trip(at: int, values: list[str]) -> None:
    header = ",".join([f"t={at}", *(f"v1={v}" for v in values), "v0=legacy"])
    assert signatures.parse_stripe_header(header) == (str(at), values)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "stripe-signature",
                "x-slack-signature",
                "x-slack-request-timestamp",
                "x-hub-signature-256",
            ]
        ),
        st.text(max_size=80),
    ),
    st.binary(max_size=64),
)
def test_no_scheme_accepts_made_up_headers(headers: dict[str, str], body: bytes) -> None:
    check = signatures.Check(secrets=[NEW])
    for name, scheme in signatures.SCHEMES.items():
        if name in ("standard-webhooks", "hmac"):
            continue
        assert not scheme(check, headers, body, time.time()).ok
    standard = signatures.Check(secrets=[WH_NEW])
    assert not signatures.standard_webhooks(standard, headers, body, time.time()).ok
