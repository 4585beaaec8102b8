"""Webhook signature verification over the raw body, one pure function per scheme.

Every comparison is constant-time (`hmac.compare_digest`); every secret of the trigger is tried,
so a sender can rotate secrets without downtime. A verdict names the failure for metrics and
logs, while the HTTP answer stays generic so a caller learns nothing about which part failed.

An accepted verdict carries the key replay protection remembers, made only of what the sender
signed: the signed message id where the scheme signs one (Standard Webhooks), else a digest of
the signed content. No header text goes into it, so a captured delivery with a rewritten
unsigned header (`X-GitHub-Delivery`), its hex in capitals or spaced out, a bogus signature
listed first, or only one of the several valid signatures a rotating sender sends, is still
the same delivery. For one secret the digest of the content is as unique as the MAC over it,
and unlike the MAC it does not depend on which of the trigger's secrets matched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Reason = Literal["ok", "missing_header", "invalid_signature", "stale_timestamp"]


@dataclass(frozen=True)
class Verdict:
    reason: Reason
    replay_key: str | None = None  # what replay protection remembers (signed data only)

    @property
    def ok(self) -> bool:
        return self.reason == "ok"

    @property
    def status(self) -> int:
        return {"ok": 200, "missing_header": 400}.get(self.reason, 401)


MISSING = Verdict("missing_header")
INVALID = Verdict("invalid_signature")
STALE = Verdict("stale_timestamp")


@dataclass(frozen=True)
class Check:
    """What a scheme needs from the trigger's `verify` settings."""

    secrets: Sequence[str]
    tolerance_s: float = 300
    header: str = ""
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    timestamp_header: str = ""
    id_header: str = ""  # named by the spec; not signed, so never part of a replay key


def _mac(key: bytes, content: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, content, getattr(hashlib, algorithm)).digest()


def _any_equal(given: Sequence[bytes], expected: Sequence[bytes]) -> bool:
    found = False
    for candidate in given:
        for wanted in expected:
            found |= hmac.compare_digest(candidate, wanted)  # no early exit: constant work
    return found


def _fresh(timestamp: str, now: float, tolerance_s: float) -> bool | None:
    """True when within tolerance, False when not, None when not a timestamp at all."""
    try:
        return abs(now - int(timestamp)) <= tolerance_s
    except ValueError:
        return None


def _signed(content: bytes) -> Verdict:
    """Accepted, keyed on the digest of the signed content."""
    return Verdict("ok", hashlib.sha256(content).hexdigest())


def _timed(timestamp: str, now: float, check: Check) -> Verdict | None:
    fresh = _fresh(timestamp, now, check.tolerance_s)
    if fresh is None:
        return INVALID
    return None if fresh else STALE


def standard_key(secret: str) -> bytes:
    """A Standard Webhooks secret: `whsec_` then base64."""
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def parse_standard_signatures(header: str) -> list[bytes]:
    """`v1,<base64> v1,<base64> ...`: the v1 entries, decoded; anything else is skipped."""
    found = []
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version == "v1" and value:
            try:
                found.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue
    return found


def standard_webhooks(check: Check, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    msg_id, timestamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signature:
        return MISSING
    if (problem := _timed(timestamp, now, check)) is not None:
        return problem
    content = f"{msg_id}.{timestamp}.".encode() + body
    expected = [_mac(standard_key(secret), content) for secret in check.secrets]
    if not _any_equal(parse_standard_signatures(signature), expected):
        return INVALID
    # The id is signed, and a sender's retry of the message keeps it (with a new timestamp):
    # the id alone is the key, so those retries count as the replays they are.
    return Verdict("ok", hashlib.sha256(b"webhook-id:" + msg_id.encode()).hexdigest())


def _hex(value: str) -> bytes | None:
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def github(check: Check, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    signature = headers.get("x-hub-signature-256")
    if not signature:
        return MISSING
    scheme, _, value = signature.partition("=")
    given = _hex(value)
    if scheme != "sha256" or given is None:
        return INVALID
    expected = [_mac(secret.encode(), body) for secret in check.secrets]
    if not _any_equal([given], expected):
        return INVALID
    return _signed(body)  # X-GitHub-Delivery is not signed: never part of the key


def parse_stripe_header(header: str) -> tuple[str | None, list[str]]:
    """`t=<ts>,v1=<hex>,v1=<hex>,v0=...`: the timestamp and the v1 signatures."""
    timestamp, signatures = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1" and value:
            signatures.append(value)
    return timestamp, signatures


def stripe(check: Check, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    header = headers.get("stripe-signature")
    if not header:
        return MISSING
    timestamp, signatures = parse_stripe_header(header)
    if timestamp is None or not signatures:
        return INVALID
    if (problem := _timed(timestamp, now, check)) is not None:
        return problem
    content = f"{timestamp}.".encode() + body
    given = [g for g in (_hex(s) for s in signatures) if g is not None]
    if not _any_equal(given, [_mac(s.encode(), content) for s in check.secrets]):
        return INVALID
    return _signed(content)


def slack(check: Check, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    signature, timestamp = (
        headers.get("x-slack-signature"),
        headers.get("x-slack-request-timestamp"),
    )
    if not signature or not timestamp:
        return MISSING
    if (problem := _timed(timestamp, now, check)) is not None:
        return problem
    version, _, value = signature.partition("=")
    given = _hex(value)
    if version != "v0" or given is None:
        return INVALID
    content = f"v0:{timestamp}:".encode() + body
    if not _any_equal([given], [_mac(s.encode(), content) for s in check.secrets]):
        return INVALID
    return _signed(content)


def generic_hmac(check: Check, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    """Configurable HMAC: header, algorithm, hex or base64, optional prefix and timestamp."""
    signature = headers.get(check.header.lower())
    timestamp = headers.get(check.timestamp_header.lower()) if check.timestamp_header else ""
    if not signature or timestamp is None:
        return MISSING
    content = body
    if timestamp:
        if (problem := _timed(timestamp, now, check)) is not None:
            return problem
        content = f"{timestamp}.".encode() + body
    if not signature.startswith(check.prefix):
        return INVALID
    given = _decode(signature[len(check.prefix) :], check.encoding)
    expected = [_mac(s.encode(), content, check.algorithm) for s in check.secrets]
    if given is None or not _any_equal([given], expected):
        return INVALID
    return _signed(content)  # `id_header` is not signed: never part of the key


def _decode(value: str, encoding: str) -> bytes | None:
    if encoding == "hex":
        return _hex(value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


Scheme = Callable[[Check, Mapping[str, str], bytes, float], Verdict]
SCHEMES: dict[str, Scheme] = {
    "standard-webhooks": standard_webhooks,
    "github": github,
    "stripe": stripe,
    "slack": slack,
    "hmac": generic_hmac,
}
TIMESTAMPED = {"standard-webhooks", "stripe", "slack"}
