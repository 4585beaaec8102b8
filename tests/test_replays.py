"""Replay protection keyed on what the sender signed: a captured delivery whose unsigned parts
are rewritten (the delivery id header, the signature's hex in capitals or spaced out, a bogus
signature listed first, one of a rotating sender's several signatures, base64's spare bits)
still verifies, and must still be refused as a replay. Signed with each scheme's own library
where one exists (standardwebhooks, stripe, slack_sdk)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook

from tests.conftest import Router, unique

OLD, NEW = "old-secret-1", "new-secret-2"
WH_OLD = "whsec_" + base64.b64encode(b"old standard secret").decode()
WH_NEW = "whsec_" + base64.b64encode(b"new standard secret").decode()

Headers = dict[str, str]
# (body, now) -> the captured delivery's headers, and its replays by what was changed
Capture = Callable[[bytes, int], tuple[Headers, dict[str, Headers]]]


def capitals(hex_digest: str) -> str:
    return hex_digest.upper()


def spaced(hex_digest: str) -> str:
    """`bytes.fromhex` reads hex with spaces between the bytes."""
    return " ".join(hex_digest[i : i + 2] for i in range(0, len(hex_digest), 2))


def spare_bits(encoded: str) -> str:
    """Other base64 text for the same bytes: a 64-byte digest leaves four bits of its last
    character unused, and decoders ignore them."""
    data = encoded.rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    flipped = alphabet[alphabet.index(data[-1]) ^ 1]
    changed = data[:-1] + flipped + encoded[len(data) :]
    assert changed != encoded
    assert base64.b64decode(changed) == base64.b64decode(encoded)
    return changed


def standard(body: bytes, now: int) -> tuple[Headers, dict[str, Headers]]:
    msg_id = unique("msg")

    def sign(secret: str, at: int) -> str:
        return Webhook(secret).sign(msg_id, datetime.fromtimestamp(at, tz=UTC), body.decode())

    def headers(signature: str, at: int = now) -> Headers:
        return {"webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": signature}

    new, old = sign(WH_NEW, now), sign(WH_OLD, now)
    return headers(f"{new} {old}"), {
        "the same again": headers(f"{new} {old}"),
        "only the old secret's signature": headers(old),
        "a bogus signature listed first": headers(
            f"v1,{base64.b64encode(b'x' * 32).decode()} {new}"
        ),
        "retried by the sender with a new timestamp": headers(sign(WH_NEW, now + 1), now + 1),
    }


def github(body: bytes, now: int) -> tuple[Headers, dict[str, Headers]]:
    # GitHub publishes no Python library; this is its documented HMAC-SHA256 over the body.
    digest = hmac.new(NEW.encode(), body, hashlib.sha256).hexdigest()

    def headers(signature: str, delivery: str | None) -> Headers:
        given = {"X-Hub-Signature-256": f"sha256={signature}", "X-GitHub-Event": "push"}
        return given | ({"X-GitHub-Delivery": delivery} if delivery else {})

    return headers(digest, unique("gh")), {
        "another X-GitHub-Delivery": headers(digest, unique("gh")),
        "no X-GitHub-Delivery": headers(digest, None),
        "hex in capitals": headers(capitals(digest), unique("gh")),
        "hex spaced out": headers(spaced(digest), unique("gh")),
    }


def stripe_(body: bytes, now: int) -> tuple[Headers, dict[str, Headers]]:
    def v1(secret: str) -> str:
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, now)
        return header.partition("v1=")[2]

    new, old = v1(NEW), v1(OLD)

    def headers(value: str) -> Headers:
        return {"Stripe-Signature": value}

    # While a secret rolls, Stripe signs with both: one v1 per secret.
    return headers(f"t={now},v1={new},v1={old}"), {
        "a bogus v1 listed first": headers(f"t={now},v1={'0' * 64},v1={new}"),
        "only the old secret's v1": headers(f"t={now},v1={old}"),
        "the v1s swapped": headers(f"t={now},v1={old},v1={new}"),
        "hex in capitals": headers(f"t={now},v1={capitals(new)}"),
        "spaces and a v0": headers(f"t={now}, v1={new}, v0=legacy"),
    }


def slack(body: bytes, now: int) -> tuple[Headers, dict[str, Headers]]:
    signature = SignatureVerifier(NEW).generate_signature(timestamp=str(now), body=body)
    assert signature is not None
    digest = signature.removeprefix("v0=")

    def headers(value: str) -> Headers:
        return {"X-Slack-Signature": f"v0={value}", "X-Slack-Request-Timestamp": str(now)}

    return headers(digest), {
        "hex in capitals": headers(capitals(digest)),
        "hex spaced out": headers(spaced(digest)),
    }


HMAC_BASE64 = {
    "header": "X-Signature",
    "algorithm": "sha512",
    "encoding": "base64",
    "prefix": "v=",
    "timestamp_header": "X-Timestamp",
    "id_header": "X-Delivery",
}


def hmac_base64(body: bytes, now: int) -> tuple[Headers, dict[str, Headers]]:
    digest = hmac.new(NEW.encode(), f"{now}.".encode() + body, hashlib.sha512).digest()
    encoded = base64.b64encode(digest).decode()

    def headers(value: str, delivery: str) -> Headers:
        return {"X-Signature": f"v={value}", "X-Timestamp": str(now), "X-Delivery": delivery}

    return headers(encoded, unique("d")), {
        "another X-Delivery (not signed)": headers(encoded, unique("d")),
        "base64's spare bits changed": headers(spare_bits(encoded), unique("d")),
    }


HMAC_HEX = {"header": "X-Signature", "prefix": "sha256="}


def hmac_hex(body: bytes, now: int) -> tuple[Headers, dict[str, Headers]]:
    digest = hmac.new(NEW.encode(), body, hashlib.sha256).hexdigest()

    def headers(value: str) -> Headers:
        return {"X-Signature": f"sha256={value}"}

    return headers(digest), {
        "hex in capitals": headers(capitals(digest)),
        "hex spaced out": headers(spaced(digest)),
    }


CASES: dict[str, tuple[dict[str, Any], Capture]] = {
    "standard-webhooks": ({"scheme": "standard-webhooks", "secrets": [WH_OLD, WH_NEW]}, standard),
    "github": ({"scheme": "github", "secrets": [OLD, NEW]}, github),
    "stripe": ({"scheme": "stripe", "secrets": [OLD, NEW]}, stripe_),
    "slack": ({"scheme": "slack", "secrets": [OLD, NEW]}, slack),
    "hmac, base64 and an id header": (
        {"scheme": "hmac", "secrets": [NEW], **HMAC_BASE64},
        hmac_base64,
    ),
    "hmac, hex, no timestamp": ({"scheme": "hmac", "secrets": [NEW], **HMAC_HEX}, hmac_hex),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_rewritten_replay_is_still_a_replay(router: Router, case: str) -> None:
    verify, capture = CASES[case]
    function, trigger = unique("replay"), unique("replay")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(trigger, function=function, type="webhook", verify=verify)

    def post(body: bytes, headers: Headers) -> Any:
        response = router.http.post(f"/hooks/{trigger}", content=body, headers=headers)
        assert response.status_code == 200, (case, response.text)
        return response.json()

    body = json.dumps({"order": unique("o")}).encode()
    now = int(time.time())
    original, replays = capture(body, now)
    assert post(body, original)["ok"] is True
    for changed, headers in replays.items():
        assert post(body, headers) == {"duplicate": True}, f"{case}: {changed} ran again"
    other = json.dumps({"order": unique("o")}).encode()
    assert post(other, capture(other, now)[0])["ok"] is True, "a new delivery still runs"
    assert len(router.ledger(function)) == 2
    seen = router.metric("router_webhook_rejections_total", trigger=trigger, reason="replay")
    assert seen == len(replays)
